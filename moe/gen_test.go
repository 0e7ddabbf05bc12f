package moe

import (
	"fmt"
	"math"
	"runtime"
	"testing"
)

// generateSerial is Generate as it was before the rounding was split over the cores: each
// draw rounded in the loop. Generate must produce the same bits (a preset or a seed names
// the same case on every build).
func generateSerial(cfg Config, r Routing, seed uint64, mode DataMode) *Case {
	rng := NewRand(seed)
	d := cfg.DType
	scale := 1.0
	if mode == Large {
		scale = math.Ldexp(1, 31)
		if d == FP16 {
			scale = 8
		}
	}
	draw := func(n int, std float64, sub bool) []float64 {
		v := make([]float64, n)
		for i := range v {
			switch {
			case mode == Integer:
				v[i] = float64(rng.IntN(5) - 2)
			case sub && mode == Subnormal && rng.IntN(4) == 0:
				f := d.format()
				k := 1 + rng.IntN(1<<(f.p-1)-1)
				v[i] = d.Round(float64(k) * d.MinSubnormal() * float64(1-2*rng.IntN(2)))
			default:
				v[i] = d.Round(rng.NormFloat64() * std)
			}
		}
		return v
	}
	c := &Case{Config: cfg, Routing: r.Clone()}
	c.X = draw(cfg.LenX(), scale, true)
	c.W1 = draw(cfg.LenW1(), 1/math.Sqrt(float64(cfg.H)), true)
	c.W2 = draw(cfg.LenW2(), 1/math.Sqrt(float64(cfg.I)), true)
	if cfg.Bias {
		c.B1 = draw(cfg.LenB1(), 0.1*scale, false)
		c.B2 = draw(cfg.LenB2(), 0.1*scale, false)
	}
	c.DY = draw(cfg.LenX(), 1, false)
	return c
}

// TestGenerateSameAsSerial: the split draws and rounding give every value of the serial loop,
// bit for bit, in every data mode and dtype, for tensors large enough to split: Generate's own
// split (its draws stay serial below 3 cores) and the normal draws forced over goroutines in
// chunks small enough that every tensor (biases too) spans many of them.
func TestGenerateSameAsSerial(t *testing.T) {
	for _, sp := range []struct {
		name string
		sp   streamSplit
	}{
		{"default", defaultStreamSplit()},
		{"chunk=1024", streamSplit{workers: 4, chunk: 1 << 10, min: 1 << 12}},
		{"chunk=5", streamSplit{workers: 3, chunk: 5, min: 1}},
	} {
		for _, d := range []DType{BF16, FP16, FP32} {
			for _, mode := range DataModes() {
				cfg := Config{T: 96, H: 512, I: 256, E: 3, K: 2, DType: d, Bias: true}
				r, err := RandomRouting(cfg, 7)
				if err != nil {
					t.Fatal(err)
				}
				got, err := generate(cfg, r, 11, mode, sp.sp)
				if err != nil {
					t.Fatal(err)
				}
				want := generateSerial(cfg, r, 11, mode)
				for _, tc := range []struct {
					name      string
					got, want []float64
				}{{"x", got.X, want.X}, {"w1", got.W1, want.W1}, {"w2", got.W2, want.W2}, {"b1", got.B1, want.B1}, {"b2", got.B2, want.B2}, {"dy", got.DY, want.DY}} {
					if len(tc.got) != len(tc.want) {
						t.Fatalf("%s/%v/%v/%s: %d values, want %d", sp.name, d, mode, tc.name, len(tc.got), len(tc.want))
					}
					for i := range tc.got {
						if math.Float64bits(tc.got[i]) != math.Float64bits(tc.want[i]) {
							t.Fatalf("%s/%v/%v/%s[%d] = %v, want %v", sp.name, d, mode, tc.name, i, tc.got[i], tc.want[i])
						}
					}
				}
			}
		}
	}
}

// BenchmarkGenerate: a Qwen3-30B-A3B EP-8 rank's case (H 2048, I 768, 16 local experts,
// top-8) at T tokens, its normal draws serial (workers=1) and split over every core (forced,
// even below the 3 cores from which Generate splits them), in values/s (the draws, the
// rounding and the first touch of the pages; the routing is drawn outside the loop).
func BenchmarkGenerate(b *testing.B) {
	for _, T := range []int{1024, 4096} {
		cfg := Config{T: T, H: 2048, I: 768, E: 16, K: 8, EP: EP{World: 8, Rank: 3}, DType: BF16}
		r, err := RandomRouting(cfg, 1)
		if err != nil {
			b.Fatal(err)
		}
		n := 2*cfg.LenX() + cfg.LenW1() + cfg.LenW2()
		for _, w := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("qwen3-30b-a3b-ep8/T=%d/workers=%d", T, w), func(b *testing.B) {
				sp := streamSplit{workers: w, chunk: 1 << 16, min: 1 << 18}
				for b.Loop() {
					if _, err := generate(cfg, r, 1, Normal, sp); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "values/s")
			})
		}
	}
}
