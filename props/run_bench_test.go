package props_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/props"
)

// BenchmarkRun measures a random property run on the sim backend with the default
// generator (the figure `moecheck check --cases 400 --seed 3` prints), per property and for
// every property, with Jobs jobs. Reported as cases/s (cases checked per wall second),
// cases/s/job, and cases/cpu-s (cases per second of CPU time the process used: the per-core
// throughput, which other load on a shared machine disturbs less than the wall clock).
func BenchmarkRun(b *testing.B) {
	type variant struct {
		prop string // "" for all
		jobs int
	}
	var vs []variant
	for _, j := range []int{1, 2} {
		vs = append(vs, variant{"", j})
	}
	for _, p := range props.All() {
		vs = append(vs, variant{p.Name, 1})
	}
	const cases = 400
	for _, v := range vs {
		name := v.prop
		if name == "" {
			name = "all"
		}
		b.Run(fmt.Sprintf("properties=%s/jobs=%d/cases=%d/seed=3", name, v.jobs, cases), func(b *testing.B) {
			var ps []props.Property
			if v.prop != "" {
				p, err := props.ByName(v.prop)
				if err != nil {
					b.Fatal(err)
				}
				ps = []props.Property{p}
			}
			total := 0
			cpu0 := cpuSeconds()
			for b.Loop() {
				rep, err := props.Run(context.Background(), props.RunConfig{
					Env: &props.Env{Backend: sim.New(sim.Options{})}, Properties: ps,
					Seed: 3, Cases: cases, KeepGoing: true, Jobs: v.jobs,
					NewEnv: func(int) (*props.Env, error) { return &props.Env{Backend: sim.New(sim.Options{})}, nil },
				})
				if err != nil {
					b.Fatal(err)
				}
				if len(rep.Failures) > 0 {
					b.Fatalf("%d failures on a correct path", len(rep.Failures))
				}
				total += rep.Cases
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(total)/s, "cases/s")
			b.ReportMetric(float64(total)/s/float64(v.jobs), "cases/s/job")
			if cpu := cpuSeconds() - cpu0; cpu > 0 {
				b.ReportMetric(float64(total)/cpu, "cases/cpu-s")
			}
		})
	}
}
