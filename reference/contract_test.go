package reference_test

import (
	"math"
	"slices"
	"testing"

	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// outputs lists a Result's tensors by name.
func outputs(r *reference.Result) map[string][]float64 {
	return map[string][]float64{"Y": r.Y, "DX": r.DX, "DW1": r.DW1, "DB1": r.DB1, "DW2": r.DW2, "DB2": r.DB2, "DRW": r.DRW}
}

// bitwiseEqual reports whether a and b hold the same bits (NaN payloads and zero signs
// included).
func bitwiseEqual(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
}

func isPosZero(v float64) bool { return v == 0 && !math.Signbit(v) }

// TestContracts checks the exact (bitwise) contracts of the package doc on small random
// cases: sentinel slots never read their weight and get DRW = +0; all-sentinel tokens get
// Y = DX = +0; experts with no rows get +0 weight and bias gradients — even when their
// weights are NaN or Inf; runs are deterministic and Stages do not change the outputs.
func TestContracts(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		c := smallCase(t, seed)
		res, err := reference.Run(c, reference.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p := res.Plan

		// contracts/sentinel-weight: change every sentinel's weight; nothing may change.
		c2 := c.Clone()
		c2.Global = nil
		for s, id := range c2.Routing.IDs {
			if int(id) == c.E {
				c2.Routing.Weights[s] = c.DType.Round(float64(s%5) - 2.5)
			}
		}
		res2, err := reference.Run(c2, reference.Options{Stages: true})
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range outputs(res) {
			if !bitwiseEqual(v, outputs(res2)[name]) {
				t.Fatalf("seed %d: sentinel weights changed %s (or Stages changed the outputs)", seed, name)
			}
		}
		// contracts/determinism
		res3, _ := reference.Run(c, reference.Options{})
		for name, v := range outputs(res) {
			if !bitwiseEqual(v, outputs(res3)[name]) {
				t.Fatalf("seed %d: two runs differ in %s", seed, name)
			}
		}
		// contracts/sentinel-drw and all-sentinel tokens
		for tok := 0; tok < c.T; tok++ {
			all := true
			for k := 0; k < c.K; k++ {
				s := tok*c.K + k
				if int(c.Routing.IDs[s]) == c.E {
					if !isPosZero(res.DRW[s]) {
						t.Fatalf("seed %d: sentinel slot %d: DRW = %v, want +0", seed, s, res.DRW[s])
					}
				} else {
					all = false
				}
			}
			if all {
				for h := 0; h < c.H; h++ {
					if !isPosZero(res.Y[tok*c.H+h]) || !isPosZero(res.DX[tok*c.H+h]) {
						t.Fatalf("seed %d: all-sentinel token %d: Y = %v, DX = %v, want +0",
							seed, tok, res.Y[tok*c.H:(tok+1)*c.H], res.DX[tok*c.H:(tok+1)*c.H])
					}
				}
			}
		}
		// contracts/empty-expert, also with non-finite weights in the empty experts.
		c4 := c.Clone()
		c4.NonFinite = true
		for e := 0; e < c.E; e++ {
			if p.Counts[e] != 0 {
				continue
			}
			poison := []float64{math.NaN(), math.Inf(1), math.Inf(-1)}
			for i := e * 2 * c.I * c.H; i < (e+1)*2*c.I*c.H; i++ {
				c4.W1[i] = poison[i%3]
			}
			for i := e * c.H * c.I; i < (e+1)*c.H*c.I; i++ {
				c4.W2[i] = poison[i%3]
			}
			if c.Bias {
				c4.B1[e*2*c.I] = math.NaN()
				c4.B2[e*c.H] = math.Inf(1)
			}
		}
		res4, err := reference.Run(c4, reference.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range outputs(res) {
			if !bitwiseEqual(v, outputs(res4)[name]) {
				t.Fatalf("seed %d: non-finite weights of empty experts changed %s", seed, name)
			}
		}
		for e := 0; e < c.E; e++ {
			if p.Counts[e] != 0 {
				continue
			}
			zero := func(name string, v []float64) {
				for i, x := range v {
					if !isPosZero(x) {
						t.Fatalf("seed %d: empty expert %d: %s[%d] = %v, want +0", seed, e, name, i, x)
					}
				}
			}
			zero("DW1", res4.DW1[e*2*c.I*c.H:(e+1)*2*c.I*c.H])
			zero("DW2", res4.DW2[e*c.H*c.I:(e+1)*c.H*c.I])
			if c.Bias {
				zero("DB1", res4.DB1[e*2*c.I:(e+1)*2*c.I])
				zero("DB2", res4.DB2[e*c.H:(e+1)*c.H])
			}
		}
	}
}

// TestNonFiniteIEEE checks that non-finite data follows IEEE arithmetic inside the GEMMs:
// 0·Inf is NaN. gonum's Dgemm skips zero multipliers of its first operand, so without the
// fallback the transposed layout's GEMM 1 (xs·W1[e]) would give a finite value here.
func TestNonFiniteIEEE(t *testing.T) {
	cfg := moe.Config{T: 2, H: 2, I: 1, E: 1, K: 1, DType: moe.FP32}
	for _, layout := range []moe.Layout{moe.Standard, moe.Transposed} {
		cfg.Layout = layout
		w1 := []float64{math.Inf(1), 1, 1, 1} // Standard: gate row (Inf, 1), up row (1, 1)
		c := &moe.Case{Config: cfg, NonFinite: true,
			Routing: moe.Routing{IDs: []int32{0, 0}, Weights: []float64{1, 1}},
			X:       []float64{0, 1, 0, 2}, // x[t][0] = 0 meets W1's Inf: g = 0·Inf + x[t][1] = NaN
			W1:      relayout(cfg, w1, false), W2: []float64{1, 1}, DY: []float64{1, 1, 1, 1}}
		res, err := reference.Run(c, reference.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string][]float64{"Y": res.Y, "DRW": res.DRW, "DX": res.DX} {
			for i, x := range v {
				if !math.IsNaN(x) {
					t.Errorf("%s: %s[%d] = %v, want NaN (0·Inf in GEMM 1)", layout, name, i, x)
				}
			}
		}
	}
}

// TestDuplicateIDs checks that a token choosing expert e twice with weights w₁, w₂ is the
// same layer as choosing it once with w₁ + w₂ (and a sentinel): everything is linear in the
// weight of a row. Both routings' DRW of the duplicate slots are bitwise equal (the same
// row, dotted with the same dY). Tolerance as TestEPSplitSum's, for two runs.
func TestDuplicateIDs(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		cfg := moe.Config{T: 3, H: 5, I: 4, E: 2, K: 2, Act: moe.Activation(seed % 2), Layout: moe.Layout(seed / 2 % 2),
			DType: moe.FP32, Bias: seed%3 == 0}
		dup := moe.Routing{IDs: []int32{1, 1, 0, 2, 1, 0}, Weights: []float64{0.25, 0.5, 1, 0, 0.75, 0.125}}
		merged := moe.Routing{IDs: []int32{1, 2, 0, 2, 1, 0}, Weights: []float64{0.75, 0, 1, 0, 0.75, 0.125}}
		c, err := moe.Generate(cfg, dup, seed, moe.Normal)
		if err != nil {
			t.Fatal(err)
		}
		m := c.Clone()
		m.Routing = merged
		a, err := reference.Run(c, reference.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := reference.Run(m, reference.Options{})
		if err != nil {
			t.Fatal(err)
		}
		mag, _ := reference.Magnitude(c, reference.Options{Stages: true})
		k := 2 * (2*gamma(cfg.S()+cfg.T+cfg.H+2*cfg.I+cfg.K+16)*propagation(mag) + gamma(2))
		if a.DRW[0] != a.DRW[1] {
			t.Errorf("seed %d: duplicate slots have DRW %v and %v, want equal", seed, a.DRW[0], a.DRW[1])
		}
		for name, v := range map[string][3][]float64{"Y": {a.Y, b.Y, mag.Y}, "DX": {a.DX, b.DX, mag.DX},
			"DW1": {a.DW1, b.DW1, mag.DW1}, "DW2": {a.DW2, b.DW2, mag.DW2}, "DB1": {a.DB1, b.DB1, mag.DB1}, "DB2": {a.DB2, b.DB2, mag.DB2}} {
			for i := range v[0] {
				if d := math.Abs(v[0][i] - v[1][i]); d > k*v[2][i] {
					t.Errorf("seed %d: %s[%d]: duplicate ids %v, merged %v (diff %.3g > %.3g)", seed, name, i, v[0][i], v[1][i], d, k*v[2][i])
				}
			}
		}
		if d := math.Abs(a.DRW[0] - b.DRW[0]); d > k*mag.DRW[0] {
			t.Errorf("seed %d: DRW of the duplicate %v, merged %v", seed, a.DRW[0], b.DRW[0])
		}
	}
}

// TestLayouts checks that the transposed layout is only a storage order: the same weights
// stored transposed give the same outputs and transposed weight gradients (tolerance as
// TestEPSplitSum's, for two runs whose GEMMs sum in different orders).
func TestLayouts(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		c := smallCase(t, seed)
		if c.Layout != moe.Standard {
			continue
		}
		tr := c.Clone()
		tr.Layout = moe.Transposed
		tr.W1, tr.W2 = relayout(tr.Config, c.W1, false), relayout(tr.Config, c.W2, true)
		a, err := reference.Run(c, reference.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := reference.Run(tr, reference.Options{})
		if err != nil {
			t.Fatal(err)
		}
		mag, _ := reference.Magnitude(c, reference.Options{Stages: true})
		k := 4 * gamma(c.S()+c.T+c.H+2*c.I+c.K+16) * propagation(mag)
		back := func(v []float64, w2 bool) []float64 { // transposed → standard
			std := tr.Config
			std.Layout = moe.Standard
			out := make([]float64, len(v))
			for e := 0; e < c.E; e++ {
				for j := 0; j < 2*c.I; j++ {
					for h := 0; h < c.H; h++ {
						if w2 && j < c.I {
							out[std.W2Index(e, h, j)] = v[tr.W2Index(e, h, j)]
						} else if !w2 {
							out[std.W1Index(e, j, h)] = v[tr.W1Index(e, j, h)]
						}
					}
				}
			}
			return out
		}
		for name, v := range map[string][3][]float64{"Y": {a.Y, b.Y, mag.Y}, "DX": {a.DX, b.DX, mag.DX},
			"DW1": {a.DW1, back(b.DW1, false), mag.DW1}, "DW2": {a.DW2, back(b.DW2, true), mag.DW2},
			"DB1": {a.DB1, b.DB1, mag.DB1}, "DB2": {a.DB2, b.DB2, mag.DB2}, "DRW": {a.DRW, b.DRW, mag.DRW}} {
			for i := range v[0] {
				if d := math.Abs(v[0][i] - v[1][i]); d > k*v[2][i] {
					t.Errorf("seed %d: %s[%d]: standard %v, transposed %v (diff %.3g > %.3g)", seed, name, i, v[0][i], v[1][i], d, k*v[2][i])
				}
			}
		}
	}
}
