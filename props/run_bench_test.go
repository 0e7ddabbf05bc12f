package props_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/props"
)

// benchEnv is a job's environment as `moecheck check --jobs jobs` opens it: a sim backend whose
// Runs use the job's share of the cores, and fresh instances for the history property.
func benchEnv(jobs int) *props.Env {
	o := sim.Options{}
	if jobs > 1 {
		o.Workers = max(1, runtime.GOMAXPROCS(0)/jobs)
	}
	return &props.Env{Backend: sim.New(o), New: func() (gpu.Backend, error) { return sim.New(o), nil }}
}

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
					Env: benchEnv(v.jobs), Properties: ps,
					Seed: 3, Cases: cases, KeepGoing: true, Jobs: v.jobs,
					NewEnv: func(int) (*props.Env, error) { return benchEnv(v.jobs), nil },
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

// BenchmarkJobsSpeedup measures the wall-clock speedup of Jobs=2 over Jobs=1 on the default
// distribution with every property (seed 3), in one run: the cases are taken in rounds of
// 40, each round run with one job and with two (alternating which goes first), so that load
// that comes and goes on a shared machine falls on both alike. Reported as speedup (cases/s
// with 2 jobs over cases/s with 1), with the cases/s of each.
func BenchmarkJobsSpeedup(b *testing.B) {
	const rounds, per = 10, 40
	b.Run(fmt.Sprintf("properties=all/jobs=1vs2/cases=%d/seed=3", rounds*per), func(b *testing.B) {
		var t1, t2 float64
		n := 0
		run := func(start, jobs int) float64 {
			t0 := time.Now()
			rep, err := props.Run(context.Background(), props.RunConfig{
				Env: benchEnv(jobs), Seed: 3, Start: start, Cases: per, KeepGoing: true, Jobs: jobs,
				NewEnv: func(int) (*props.Env, error) { return benchEnv(jobs), nil },
			})
			if err != nil || len(rep.Failures) > 0 || rep.Cases != per {
				b.Fatalf("round from %d: %v, %d cases", start, err, rep.Cases)
			}
			return time.Since(t0).Seconds()
		}
		for b.Loop() {
			for r := 0; r < rounds; r++ {
				if r%2 == 0 {
					t1 += run(r*per, 1)
					t2 += run(r*per, 2)
				} else {
					t2 += run(r*per, 2)
					t1 += run(r*per, 1)
				}
				n += per
			}
		}
		b.ReportMetric(t1/t2, "speedup")
		b.ReportMetric(float64(n)/t1, "cases/s-jobs1")
		b.ReportMetric(float64(n)/t2, "cases/s-jobs2")
	})
}
