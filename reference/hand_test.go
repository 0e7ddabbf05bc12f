package reference_test

import (
	"math"
	"testing"

	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// handCase is a tiny case worked out by hand. Weights are given in the Standard layout
// ([e][j][h] for W1, [e][h][j] for W2); the transposed variant is derived from them.
type handCase struct {
	name   string
	cfg    moe.Config
	ids    []int32
	rw     []float64
	x, dy  []float64
	w1, w2 []float64
	b1, b2 []float64
	// expected results (Standard layout for DW1, DW2)
	y, dx, dw1, db1, dw2, db2, drw []float64
}

// sg is the logistic function, for writing the closed forms.
func sg(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func handCases() []handCase {
	s1 := sg(1)                   // σ(1) ≈ 0.7310585786300049; silu(1) = σ(1), silu'(1) = σ(1)·(2 − σ(1))
	s7 := sg(1.702 * 7)           // gpt-oss gate at the clamp: σ(1.702·7) = σ(11.914) ≈ 0.9999933
	ds7 := s7 + 1.702*7*s7*(1-s7) // d/dg [g·σ(1.702g)] at g = 7
	one := moe.Config{T: 1, H: 1, I: 1, E: 1, K: 1, DType: moe.BF16}
	gpt := one
	gpt.Act, gpt.Bias = moe.GptOss, true
	two := moe.Config{T: 1, H: 2, I: 2, E: 1, K: 2, DType: moe.BF16}
	return []handCase{
		{
			// x = 2; gate row 0.5, up row 1.5 → g = 1, u = 3; act = silu(1)·3 = 3σ₁.
			// h2 = −0.5·3σ₁ = −1.5σ₁; y = rw·h2 = 0.25·(−1.5σ₁) = −0.375σ₁.
			// Backward with dY = 2: d_rw = dY·h2 = −3σ₁; d_h2 = rw·dY = 0.5;
			// dW2 = d_h2·act = 1.5σ₁; d_act = d_h2·W2 = −0.25;
			// d_g = d_act·u·silu'(1) = −0.75·σ₁(2−σ₁); d_u = d_act·silu(1) = −0.25σ₁;
			// dW1 = (d_g, d_u)·x = (−1.5σ₁(2−σ₁), −0.5σ₁);
			// dX = 0.5·d_g + 1.5·d_u = −0.375σ₁(2−σ₁) − 0.375σ₁ = −0.375σ₁(3−σ₁).
			name: "swiglu/H=I=1", cfg: one, ids: []int32{0}, rw: []float64{0.25},
			x: []float64{2}, dy: []float64{2}, w1: []float64{0.5, 1.5}, w2: []float64{-0.5},
			y: []float64{-0.375 * s1}, dx: []float64{-0.375 * s1 * (3 - s1)},
			dw1: []float64{-1.5 * s1 * (2 - s1), -0.5 * s1}, dw2: []float64{1.5 * s1}, drw: []float64{-3 * s1},
		},
		{
			// Slot 1 is a sentinel with weight 0.75: it must contribute nothing.
			// x = (1, −1); W1 rows (gate0, gate1, up0, up1) = (1,1), (1,0), (2,0), (0,−3)
			// → g = (0, 1), u = (2, 3); act = (silu(0)·2, silu(1)·3) = (0, 3σ₁).
			// W2 rows h: (1, 2), (−1, 0.5) → h2 = (6σ₁, 1.5σ₁) = y (rw 1).
			// dY = (1, 2): d_rw = 6σ₁ + 3σ₁ = 9σ₁, sentinel 0; d_h2 = (1, 2);
			// dW2[h][j] = d_h2[h]·act[j] = ((0, 3σ₁), (0, 6σ₁));
			// d_act = (1·1 + 2·(−1), 1·2 + 2·0.5) = (−1, 3);
			// d_g = (−1·2·silu'(0), 3·3·silu'(1)) = (−1, 9σ₁(2−σ₁)) (silu'(0) = ½);
			// d_u = (−1·silu(0), 3·silu(1)) = (0, 3σ₁);
			// dW1[row][h] = d_h1[row]·x[h]; dX = Σ_row d_h1[row]·W1[row] =
			// (−1 + 9σ₁(2−σ₁), −1 − 9σ₁).
			name: "swiglu/H=I=2/sentinel", cfg: two, ids: []int32{0, 1}, rw: []float64{1, 0.75},
			x: []float64{1, -1}, dy: []float64{1, 2},
			w1: []float64{1, 1, 1, 0, 2, 0, 0, -3}, w2: []float64{1, 2, -1, 0.5},
			y: []float64{6 * s1, 1.5 * s1}, dx: []float64{-1 + 9*s1*(2-s1), -1 - 9*s1},
			dw1: []float64{-1, 1, 9 * s1 * (2 - s1), -9 * s1 * (2 - s1), 0, 0, 3 * s1, -3 * s1},
			dw2: []float64{0, 3 * s1, 0, 6 * s1}, drw: []float64{9 * s1, 0},
		},
		{
			// gpt-oss, interleaved (col 0 gate, col 1 up), biases. x = 1, W1 = (4, 5),
			// B1 = (3, 3) → g = 7 (at the clamp: gradient passes, inclusive), u = 8 (clamped
			// to 7: no gradient). act = (7+1)·7·σ₇ = 56σ₇ with σ₇ = σ(1.702·7).
			// W2 = 0.5, B2 = 1 → h2 = 28σ₇ + 1 = y = d_rw (rw = 1, dY = 1).
			// d_h2 = 1: dW2 = 56σ₇, dB2 = 1; d_act = 0.5;
			// d_g = 0.5·(7+1)·(σ₇ + 1.702·7·σ₇(1−σ₇)) = 4·ds₇; d_u = 0.
			// dW1 = dB1 = (4ds₇, 0); dX = 4·d_g = 16ds₇.
			name: "gptoss/gate=7", cfg: gpt, ids: []int32{0}, rw: []float64{1},
			x: []float64{1}, dy: []float64{1}, w1: []float64{4, 5}, b1: []float64{3, 3}, w2: []float64{0.5}, b2: []float64{1},
			y: []float64{28*s7 + 1}, dx: []float64{16 * ds7}, dw1: []float64{4 * ds7, 0}, db1: []float64{4 * ds7, 0},
			dw2: []float64{56 * s7}, db2: []float64{1}, drw: []float64{28*s7 + 1},
		},
		{
			// gpt-oss: x = 1, W1 = (4, −5), B1 = (5, −2) → g = 9 (clamped to 7: d_g = 0),
			// u = −7 (at the clamp: gradient passes). act = (−7+1)·7σ₇ = −42σ₇.
			// W2 = 2, B2 = 0 → h2 = −84σ₇; rw = 0.5 → y = −42σ₇; dY = −1 → d_rw = 84σ₇.
			// d_h2 = −0.5: dW2 = 21σ₇, dB2 = −0.5; d_act = −1; d_u = −1·7σ₇ = −7σ₇.
			// dW1 = dB1 = (0, −7σ₇); dX = 4·0 + (−5)·(−7σ₇) = 35σ₇.
			name: "gptoss/up=-7", cfg: gpt, ids: []int32{0}, rw: []float64{0.5},
			x: []float64{1}, dy: []float64{-1}, w1: []float64{4, -5}, b1: []float64{5, -2}, w2: []float64{2}, b2: []float64{0},
			y: []float64{-42 * s7}, dx: []float64{35 * s7}, dw1: []float64{0, -7 * s7}, db1: []float64{0, -7 * s7},
			dw2: []float64{21 * s7}, db2: []float64{-0.5}, drw: []float64{84 * s7},
		},
		{
			// The only slot is a sentinel with weight 0.5: everything is exactly +0.
			name: "swiglu/all-sentinel", cfg: one, ids: []int32{1}, rw: []float64{0.5},
			x: []float64{2}, dy: []float64{2}, w1: []float64{0.5, 1.5}, w2: []float64{-0.5},
			y: []float64{0}, dx: []float64{0}, dw1: []float64{0, 0}, dw2: []float64{0}, drw: []float64{0},
		},
	}
}

// relayout copies a Standard-layout W1 (w2 false) or W2 (w2 true) into cfg's layout.
func relayout(cfg moe.Config, v []float64, w2 bool) []float64 {
	std := cfg
	std.Layout = moe.Standard
	out := make([]float64, len(v))
	for e := 0; e < cfg.E; e++ {
		for j := 0; j < 2*cfg.I; j++ {
			for h := 0; h < cfg.H; h++ {
				if w2 && j < cfg.I {
					out[cfg.W2Index(e, h, j)] = v[std.W2Index(e, h, j)]
				}
				if !w2 {
					out[cfg.W1Index(e, j, h)] = v[std.W1Index(e, j, h)]
				}
			}
		}
	}
	return out
}

// TestHandComputed checks Run against tiny cases worked out by hand, in both layouts. The
// closed forms and Run evaluate the same expressions in different orders, each with at
// most ~20 roundings of terms no larger than 10·max(1, |want|): 256·u64 covers that.
func TestHandComputed(t *testing.T) {
	for _, hc := range handCases() {
		for _, layout := range []moe.Layout{moe.Standard, moe.Transposed} {
			t.Run(hc.name+"/"+layout.String(), func(t *testing.T) {
				cfg := hc.cfg
				cfg.Layout = layout
				c := &moe.Case{Config: cfg, Routing: moe.Routing{IDs: hc.ids, Weights: hc.rw},
					X: hc.x, DY: hc.dy, W1: relayout(cfg, hc.w1, false), W2: relayout(cfg, hc.w2, true), B1: hc.b1, B2: hc.b2}
				res, err := reference.Run(c, reference.Options{Stages: true})
				if err != nil {
					t.Fatal(err)
				}
				check := func(name string, got, want []float64) {
					t.Helper()
					if len(got) != len(want) {
						t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
					}
					for i := range want {
						if math.Abs(got[i]-want[i]) > 256*u64*math.Max(1, math.Abs(want[i])) {
							t.Errorf("%s[%d] = %.17g, want %.17g", name, i, got[i], want[i])
						}
					}
				}
				check("Y", res.Y, hc.y)
				check("DX", res.DX, hc.dx)
				check("DW1", res.DW1, relayout(cfg, hc.dw1, false))
				check("DW2", res.DW2, relayout(cfg, hc.dw2, true))
				check("DB1", res.DB1, hc.db1)
				check("DB2", res.DB2, hc.db2)
				check("DRW", res.DRW, hc.drw)
				for s, id := range hc.ids {
					if int(id) == cfg.E && (res.DRW[s] != 0 || math.Signbit(res.DRW[s])) {
						t.Errorf("sentinel slot %d: DRW = %v, want +0", s, res.DRW[s])
					}
				}
			})
		}
	}
}
