package oracle_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/gpu/simtorch"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/reference"
)

func benchCase(b *testing.B, T, H, I, E, K int) *moe.Case {
	cfg := moe.Config{T: T, H: H, I: I, E: E, K: K, DType: moe.BF16}
	return casetest.Case(b, cfg, 1)
}

// BenchmarkCheck measures one complete check of a case: the sim path forward and backward,
// the oracle's enclosure and checks (end-to-end and stage-local), and — in the "+reference"
// variant — the float64 reference for the context metrics. Reported as cases/s.
func BenchmarkCheck(b *testing.B) {
	for _, sz := range []struct{ T, H, I, E, K int }{{4, 8, 8, 4, 2}, {32, 64, 32, 8, 4}} {
		c := benchCase(b, sz.T, sz.H, sz.I, sz.E, sz.K)
		name := fmt.Sprintf("T=%d/H=%d/I=%d/E=%d/K=%d", sz.T, sz.H, sz.I, sz.E, sz.K)
		for _, variant := range []string{"sim+oracle", "sim+oracle+reference", "enclosure-only"} {
			b.Run(name+"/"+variant, func(b *testing.B) {
				be := sim.New(sim.Options{})
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					be := sim.New(sim.Options{}) // one backend and checker per goroutine, as per fuzz worker
					var ck oracle.Checker
					for pb.Next() {
						switch variant {
						case "enclosure-only":
							if _, err := oracle.Enclose(c); err != nil {
								b.Fatal(err)
							}
							continue
						}
						r, err := be.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN, Stages: true})
						if err != nil {
							b.Fatal(err)
						}
						opts := oracle.Options{}
						if variant == "sim+oracle+reference" {
							ref, err := reference.Run(c, reference.Options{})
							if err != nil {
								b.Fatal(err)
							}
							opts.Reference = ref
						}
						v, err := ck.Check(c, r, opts)
						if err != nil || !v.Pass {
							b.Fatal(err, v.Summary())
						}
					}
				})
				_ = be
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cases/s")
			})
		}
	}
}

// BenchmarkCheckContract measures a black-box check (end to end, as for a PyTorch worker)
// on one goroutine: gpu/sim's result under exact, sim-torch's under torch and any (the
// contract's freedoms change the enclosure's cost: eager activation ops, dtype sums).
// Reported as cases/s.
func BenchmarkCheckContract(b *testing.B) {
	for _, sz := range []struct{ T, H, I, E, K int }{{4, 8, 8, 4, 2}, {32, 64, 32, 8, 4}} {
		c := benchCase(b, sz.T, sz.H, sz.I, sz.E, sz.K)
		name := fmt.Sprintf("T=%d/H=%d/I=%d/E=%d/K=%d", sz.T, sz.H, sz.I, sz.E, sz.K)
		rt, err := simtorch.New(simtorch.Options{}).Run(context.Background(), c, gpu.RunOptions{})
		if err != nil {
			b.Fatal(err)
		}
		rs := casetest.SimRun(b, c, gpu.RunOptions{})
		for _, ct := range []contract.Contract{contract.Exact(), contract.Torch(), contract.Any()} {
			r := rt
			if ct.Name == "exact" {
				r = rs
			}
			b.Run(name+"/contract="+ct.Name, func(b *testing.B) {
				var ck oracle.Checker
				for i := 0; i < b.N; i++ {
					v, err := ck.Check(c, r, oracle.Options{Contract: ct})
					if err != nil || !v.Pass {
						b.Fatal(err, v.Summary())
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cases/s")
			})
		}
	}
}

// BenchmarkCheckSampled measures the stage-local oracle alone (the sim result computed once)
// at a shape with long expert groups and large weights (T 512, H 1024, I 512, 8 experts,
// top-4: 256 rows per expert), full and sampled at fractions F (issue 14 item 4; the
// DeepSeek-V3 figures are in the README). Reported as checks/s.
func BenchmarkCheckSampled(b *testing.B) {
	c := benchCase(b, 512, 1024, 512, 8, 4)
	r := casetest.SimRun(b, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true})
	for _, f := range []float64{0, 0.1, 0.05, 0.01} {
		b.Run(fmt.Sprintf("T=512/H=1024/I=512/E=8/K=4/F=%g", f), func(b *testing.B) {
			var ck oracle.Checker
			for i := 0; i < b.N; i++ {
				v, err := ck.Check(c, r, oracle.Options{Sample: oracle.Sample{Fraction: f, Seed: uint64(i)}})
				if err != nil || !v.Pass {
					b.Fatal(err, v.Summary())
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
		})
	}
}
