package props_test

import (
	"context"
	"testing"

	"github.com/moecheck/moecheck/props"
)

// BenchmarkRunPair measures matches with token-permutation on the default generator (seed 3,
// 400 cases, one job), the pair in which token-permutation derives its permuted run's
// stage-local comparisons from matches' judgement of the base run (oracle.Options.Derive):
// token-permutation alone (BenchmarkRun) checks its run in full. Reported as cases/cpu-s.
func BenchmarkRunPair(b *testing.B) {
	b.Run("properties=matches,token-permutation/jobs=1/cases=400/seed=3", func(b *testing.B) {
		var ps []props.Property
		for _, n := range []string{"matches", "token-permutation"} {
			p, err := props.ByName(n)
			if err != nil {
				b.Fatal(err)
			}
			ps = append(ps, p)
		}
		total := 0
		cpu0 := cpuSeconds()
		for b.Loop() {
			rep, err := props.Run(context.Background(), props.RunConfig{Env: benchEnv(1), Properties: ps, Seed: 3, Cases: 400, KeepGoing: true, Jobs: 1})
			if err != nil {
				b.Fatal(err)
			}
			if len(rep.Failures) > 0 {
				b.Fatalf("%d failures on a correct path", len(rep.Failures))
			}
			total += rep.Cases
		}
		if cpu := cpuSeconds() - cpu0; cpu > 0 {
			b.ReportMetric(float64(total)/cpu, "cases/cpu-s")
		}
	})
}
