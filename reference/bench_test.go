package reference_test

import (
	"fmt"
	"runtime"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// benchShape is one benchmarked configuration: bf16 data, uniform routing (moe.RandomRouting)
// over E·W global experts mapped to rank 0, so with W = 8 about 7/8 of the slots are
// sentinels and only the local rows are computed.
type benchShape struct {
	name    string
	T, H, I int
	E, K, W int
}

func (s benchShape) String() string {
	return fmt.Sprintf("%s/T=%d/H=%d/I=%d/E=%d/K=%d/W=%d", s.name, s.T, s.H, s.I, s.E, s.K, s.W)
}

var benchShapes = []benchShape{
	{"tiny", 8, 32, 16, 4, 2, 1},
	// Qwen3-30B-A3B (H 2048, I 768, 128 experts, top-8) on one rank of EP 8: 16 local experts.
	{"qwen3-30b-a3b", 256, 2048, 768, 16, 8, 8},
	{"qwen3-30b-a3b", 256, 2048, 768, 16, 8, 1},
	{"qwen3-30b-a3b", 4096, 2048, 768, 16, 8, 8},
	{"qwen3-30b-a3b", 4096, 2048, 768, 16, 8, 1},
}

// flops counts the multiply-adds of the six GEMMs (2 per multiply-add): forward
// 2·R·(2I·H + I·H), backward twice that (dgrad and wgrad of each), R the real rows.
func flops(c *moe.Case, p *moe.Plan) float64 {
	return 18 * float64(p.Rows) * float64(c.I) * float64(c.H)
}

func benchCase(b *testing.B, s benchShape) *moe.Case {
	cfg := moe.Config{T: s.T, H: s.H, I: s.I, E: s.E, K: s.K, DType: moe.BF16}
	if s.W > 1 {
		cfg.EP = moe.EP{World: s.W}
	}
	return casetest.Case(b, cfg, 1)
}

func benchmarkPass(b *testing.B, pass func(*moe.Case, reference.Options) (*reference.Result, error), shapes []benchShape) {
	for _, s := range shapes {
		var c *moe.Case // built on first use, so a -bench filter skips the big allocations
		b.Run(s.String(), func(b *testing.B) {
			if c == nil {
				c = benchCase(b, s)
			}
			p, err := c.Plan()
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := pass(c, reference.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/sec, "cases/s")
			b.ReportMetric(flops(c, p)*float64(b.N)/sec/1e9, "GFLOP/s")
			b.ReportMetric(float64(p.Rows), "rows")
		})
	}
}

// BenchmarkRun is forward + backward of the reference (Run, without stages).
func BenchmarkRun(b *testing.B) { benchmarkPass(b, reference.Run, benchShapes) }

// BenchmarkMagnitude is the magnitude pass (same GEMMs, plus |W| copies per expert).
func BenchmarkMagnitude(b *testing.B) { benchmarkPass(b, reference.Magnitude, benchShapes[:2]) }

// BenchmarkRunPar runs forward + backward (Run) and the magnitude pass (Magnitude) of a
// Qwen3-30B-A3B EP-8 rank on one core (par=1: GOMAXPROCS 1, so neither gonum's Dgemm nor the
// reference's own loops split) and on all of them (par=N), in one run. B/op is the pass's
// peak heap: everything it allocates stays live until it returns. cpu-s/op is the process's
// CPU time per pass (on shared cores wall time grows but this does not; cpu-s/op ÷ s/op is
// the number of cores the pass kept busy). Select shapes with -bench,
// e.g. 'RunPar/Run/qwen3-30b-a3b/T=4096'.
func BenchmarkRunPar(b *testing.B) {
	shapes := []benchShape{
		{"qwen3-30b-a3b", 256, 2048, 768, 16, 8, 8},
		{"qwen3-30b-a3b", 4096, 2048, 768, 16, 8, 8},
		{"qwen3-30b-a3b", 16384, 2048, 768, 16, 8, 8},
	}
	for _, pass := range []struct {
		name string
		f    func(*moe.Case, reference.Options) (*reference.Result, error)
	}{{"Run", reference.Run}, {"Magnitude", reference.Magnitude}} {
		for _, s := range shapes {
			var c *moe.Case
			for _, par := range []int{1, runtime.GOMAXPROCS(0)} {
				b.Run(fmt.Sprintf("%s/%s/par=%d", pass.name, s, par), func(b *testing.B) {
					if c == nil {
						c = benchCase(b, s)
					}
					p, err := c.Plan()
					if err != nil {
						b.Fatal(err)
					}
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(par))
					b.ReportAllocs()
					var cpu0 float64
					for b.Loop() {
						if cpu0 == 0 {
							cpu0 = cpuSeconds()
						}
						if _, err := pass.f(c, reference.Options{}); err != nil {
							b.Fatal(err)
						}
					}
					sec := b.Elapsed().Seconds()
					b.ReportMetric(float64(b.N)/sec, "cases/s")
					b.ReportMetric(flops(c, p)*float64(b.N)/sec/1e9, "GFLOP/s")
					b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
				})
			}
		}
	}
}

// BenchmarkDgemm is gonum's Dgemm alone, n×n×n, for scale.
func BenchmarkDgemm(b *testing.B) {
	for _, n := range []int{256, 1024} {
		for _, tr := range []struct {
			name   string
			ta, tb blas.Transpose
		}{{"NN", blas.NoTrans, blas.NoTrans}, {"NT", blas.NoTrans, blas.Trans}, {"TN", blas.Trans, blas.NoTrans}} {
			b.Run(fmt.Sprintf("n=%d/%s", n, tr.name), func(b *testing.B) {
				m := func() blas64.General {
					g := blas64.General{Rows: n, Cols: n, Stride: n, Data: make([]float64, n*n)}
					for i := range g.Data {
						g.Data[i] = float64(i%13) - 6
					}
					return g
				}
				x, y, z := m(), m(), m()
				for b.Loop() {
					blas64.Gemm(tr.ta, tr.tb, 1, x, y, 0, z)
				}
				b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
