package sim

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// benchFlops counts the six GEMMs' 18·R·H·I multiply-adds as two flops each (R real rows:
// forward 2·R·H·2I + 2·R·I·H, backward twice that).
func benchFlops(c *moe.Case) float64 {
	p, err := c.Plan()
	if err != nil {
		panic(err)
	}
	return 18 * float64(p.Rows) * float64(c.H) * float64(c.I)
}

// benchRun runs c on be b.N times (zero poison, no faults) and reports cases/s, GFLOP/s,
// cpu-s/op (process CPU time per Run: on shared cores, wall time grows but this does not, and
// cpu-s/op ÷ s/op is the number of cores a Run kept busy) and state-MB, the Backend's working
// set (inputs, routing, pool buffers) after the Runs.
//
// The stage memo is off: every Run of the loop is the same case, which the memo would serve
// from the second Run on; these benchmarks measure the computation (BenchmarkRunMemo measures
// the memo).
func benchRun(b *testing.B, be *Backend, c *moe.Case) {
	be.noMemo = true
	ctx := context.Background()
	var cpu0 float64
	for b.Loop() {
		if cpu0 == 0 {
			cpu0 = cpuSeconds()
		}
		if _, err := be.Run(ctx, c, gpu.RunOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/sec, "cases/s")
	b.ReportMetric(benchFlops(c)*float64(b.N)/sec/1e9, "GFLOP/s")
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(be.st.bytes())/(1<<20), "state-MB")
}

// BenchmarkRun measures whole Runs of small shapes (forward and backward, zero poison, no
// faults) with the default split (below the size threshold, one goroutine).
func BenchmarkRun(b *testing.B) {
	for _, cfg := range []moe.Config{
		{T: 4, H: 8, I: 8, E: 4, K: 2, DType: moe.BF16},
		{T: 64, H: 128, I: 64, E: 8, K: 4, DType: moe.BF16},
		{T: 256, H: 256, I: 128, E: 8, K: 4, DType: moe.BF16},
	} {
		b.Run(fmt.Sprintf("T=%d/H=%d/I=%d/E=%d/K=%d", cfg.T, cfg.H, cfg.I, cfg.E, cfg.K), func(b *testing.B) {
			benchRun(b, New(Options{}), makeCase(b, cfg, routeLocal, moe.Normal, 1))
		})
	}
}

// BenchmarkRunData measures whole Runs (as BenchmarkRun) of bf16 shapes on normal data and
// on the case generator's data mode subnormal (a quarter of the hidden states and weights
// bf16 subnormals, whose fp32 products are subnormal: a microcode assist per VMULPS on x86,
// which the wide-product kernel avoids), among them case 57 of seed 3's shape.
func BenchmarkRunData(b *testing.B) {
	for _, cfg := range []moe.Config{
		{T: 64, H: 128, I: 64, E: 8, K: 4, DType: moe.BF16},
		{T: 24, H: 8, I: 320, E: 7, K: 8, DType: moe.BF16, Act: moe.GptOss},
	} {
		for _, m := range []moe.DataMode{moe.Normal, moe.Subnormal} {
			b.Run(fmt.Sprintf("T=%d/H=%d/I=%d/E=%d/K=%d/act=%s/data=%s", cfg.T, cfg.H, cfg.I, cfg.E, cfg.K, cfg.Act, m), func(b *testing.B) {
				benchRun(b, New(Options{}), makeCase(b, cfg, routeLocal, m, 1))
			})
		}
	}
}

// BenchmarkRunPar compares one goroutine (par=1, the sim before its stages were split) with
// the default split over GOMAXPROCS goroutines (par=N), in one run, from the small shapes of
// BenchmarkRun (where the threshold keeps par=N on one goroutine) to a Qwen3-30B-A3B rank of
// EP 8 (H 2048, I 768, 16 local experts of 128, top-8, bf16; uniform routing, so about T·K/8
// real rows). Select shapes with -bench, e.g. 'RunPar/qwen3-30b-a3b/T=4096'.
func BenchmarkRunPar(b *testing.B) {
	for _, s := range []struct {
		name string
		cfg  moe.Config
	}{
		{"small", moe.Config{T: 4, H: 8, I: 8, E: 4, K: 2, DType: moe.BF16}},
		{"small", moe.Config{T: 64, H: 128, I: 64, E: 8, K: 4, DType: moe.BF16}},
		{"small", moe.Config{T: 256, H: 256, I: 128, E: 8, K: 4, DType: moe.BF16}},
		{"qwen3-30b-a3b", moe.Config{T: 256, H: 2048, I: 768, E: 16, K: 8, DType: moe.BF16, EP: moe.EP{World: 8}}},
		{"qwen3-30b-a3b", moe.Config{T: 4096, H: 2048, I: 768, E: 16, K: 8, DType: moe.BF16, EP: moe.EP{World: 8}}},
		{"qwen3-30b-a3b", moe.Config{T: 16384, H: 2048, I: 768, E: 16, K: 8, DType: moe.BF16, EP: moe.EP{World: 8}}},
	} {
		cfg := s.cfg
		var c *moe.Case // built on first use, so a -bench filter skips the big allocations
		for _, par := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%s/T=%d/H=%d/I=%d/E=%d/K=%d/W=%d/par=%d", s.name, cfg.T, cfg.H, cfg.I, cfg.E, cfg.K, cfg.EP.WorldSize(), par), func(b *testing.B) {
				if c == nil {
					c = makeCase(b, cfg, routeLocal, moe.Normal, 1)
				}
				be := New(Options{})
				be.workers = par
				benchRun(b, be, c)
			})
		}
	}
}

// BenchmarkGemv2 measures the two-row fp32 kernel of every GEMM (gemv2) against its Go loop
// (gemv2Go) for n columns and a reduction of length k, in multiply-adds per second (2·n·k per
// call). impl=dispatch is what the path runs (the vector kernels where the CPU has them,
// gemv2Sel choosing between them), impl=plain and impl=wide the two vector kernels alone.
// data=normal is small multiples of 1/8 and 1/4; data=subnormal is that with a quarter of the
// coefficients and of b replaced by bf16 subnormals (k·2^−133, k < 2^7), as the case
// generator's data mode subnormal does: their products are fp32 subnormals, each a microcode
// assist for VMULPS on x86.
func BenchmarkGemv2(b *testing.B) {
	impls := []struct {
		name string
		f    func(c0, c1, a0, a1 []float32, as int, b []float32, bs, k int)
	}{{"go", gemv2Go}, {"dispatch", gemv2}}
	if vecKernels {
		impls = append(impls, struct {
			name string
			f    func(c0, c1, a0, a1 []float32, as int, b []float32, bs, k int)
		}{"plain", func(c0, c1, a0, a1 []float32, as int, b []float32, bs, k int) {
			gemv2Vec(&c0[0], &c1[0], &a0[0], &a1[0], as, &b[0], bs, k, len(c0))
		}}, struct {
			name string
			f    func(c0, c1, a0, a1 []float32, as int, b []float32, bs, k int)
		}{"wide", func(c0, c1, a0, a1 []float32, as int, b []float32, bs, k int) {
			gemv2Wide(&c0[0], &c1[0], &a0[0], &a1[0], as, &b[0], bs, k, len(c0))
		}})
	}
	for _, impl := range impls {
		for _, data := range []string{"normal", "subnormal"} {
			for _, sz := range []struct{ n, k int }{{4, 64}, {8, 64}, {16, 64}, {40, 40}, {80, 40}, {640, 320}} {
				b.Run(fmt.Sprintf("impl=%s/data=%s/n=%d/k=%d", impl.name, data, sz.n, sz.k), func(b *testing.B) {
					rng := moe.NewRand(1)
					sub := func(v float32) float32 {
						if data == "subnormal" && rng.IntN(4) == 0 {
							return float32(math.Ldexp(float64(rng.IntN(1<<7)), -133))
						}
						return v
					}
					a := make([]float32, 2*sz.k)
					w := make([]float32, sz.k*sz.n)
					for i := range w {
						w[i] = sub(float32(i%7) * 0.125)
					}
					for i := range a {
						a[i] = sub(float32(i%5) * 0.25)
					}
					c0, c1 := make([]float32, sz.n), make([]float32, sz.n)
					for b.Loop() {
						impl.f(c0, c1, a, a[sz.k:], 1, w, sz.n, sz.k)
					}
					b.ReportMetric(float64(b.N)*float64(2*sz.n*sz.k)/b.Elapsed().Seconds()/1e9, "Gmac/s")
				})
			}
		}
	}
}

// BenchmarkRoundAll measures roundAll (impl=dispatch: the vector kernels where the CPU has
// them, the Go loops for the rest) against its Go loops alone (impl=go) on 4096 values of
// N(0,1) (data=normal) or with a quarter replaced by the dtype's subnormals (data=subnormal),
// in elements per second.
func BenchmarkRoundAll(b *testing.B) {
	for _, d := range []moe.DType{moe.BF16, moe.FP16} {
		for _, impl := range []string{"go", "dispatch"} {
			for _, data := range []string{"normal", "subnormal"} {
				b.Run(fmt.Sprintf("dtype=%s/impl=%s/data=%s", d, impl, data), func(b *testing.B) {
					rng := moe.NewRand(1)
					src := make([]float32, 4096)
					for i := range src {
						src[i] = float32(rng.NormFloat64())
						if data == "subnormal" && rng.IntN(4) == 0 {
							src[i] = float32(d.MinSubnormal() * float64(1+rng.IntN(100)))
						}
					}
					v := make([]float32, len(src))
					for b.Loop() {
						copy(v, src)
						switch {
						case impl == "dispatch":
							roundAll(d, v)
						case d == moe.BF16:
							roundBF16(v)
						default:
							roundFP16(v)
						}
					}
					b.ReportMetric(float64(b.N)*float64(len(v))/b.Elapsed().Seconds()/1e9, "Gelem/s")
				})
			}
		}
	}
}
