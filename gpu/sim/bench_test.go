package sim

import (
	"context"
	"fmt"
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
// call). impl=dispatch is what the path runs (the vector kernel where the CPU has one).
func BenchmarkGemv2(b *testing.B) {
	for _, impl := range []struct {
		name string
		f    func(c0, c1, a0, a1 []float32, as int, b []float32, bs, k int)
	}{{"go", gemv2Go}, {"dispatch", gemv2}} {
		for _, sz := range []struct{ n, k int }{{4, 64}, {8, 64}, {16, 64}, {40, 40}, {80, 40}, {640, 320}} {
			b.Run(fmt.Sprintf("impl=%s/n=%d/k=%d", impl.name, sz.n, sz.k), func(b *testing.B) {
				a := make([]float32, 2*sz.k)
				w := make([]float32, sz.k*sz.n)
				for i := range w {
					w[i] = float32(i%7) * 0.125
				}
				for i := range a {
					a[i] = float32(i%5) * 0.25
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
