package reference

import (
	"fmt"
	"math"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// parCases are random cases for the split tests: odd shapes (some with enough rows and
// columns for several ranges at the default threshold), every activation, layout, dtype and
// bias setting, EP ranks (sentinel slots), experts with no rows, all-sentinel batches,
// duplicate ids, and non-finite data (the IEEE fallback GEMM).
func parCases(t *testing.T) []*moe.Case {
	var cs []*moe.Case
	for seed := uint64(1); seed <= 160; seed++ {
		rng := moe.NewRand(seed)
		cfg := moe.Config{T: 1 + rng.IntN(9), H: 1 + rng.IntN(13), I: 1 + rng.IntN(9), E: 1 + rng.IntN(6), K: 1 + rng.IntN(4),
			Act: moe.Activation(rng.IntN(2)), Layout: moe.Layout(rng.IntN(2)), DType: moe.DTypes()[rng.IntN(3)], Bias: rng.IntN(2) == 0}
		if w := rng.IntN(3); w > 0 {
			cfg.EP = moe.EP{World: w + 1, Rank: rng.IntN(w + 1)}
		}
		if seed%16 == 0 { // several default-threshold ranges per loop
			cfg.T, cfg.H, cfg.I = 40+rng.IntN(30), 130+rng.IntN(70), 60+rng.IntN(40)
		}
		r, err := moe.RandomRouting(cfg, seed)
		if err != nil {
			t.Fatal(err)
		}
		switch seed % 5 {
		case 1: // every slot a sentinel
			for s := range r.IDs {
				r.IDs[s], r.Weights[s] = int32(cfg.E), 0
			}
		case 2: // experts 0 and E−1 only, duplicates within a token
			for s := range r.IDs {
				r.IDs[s] = int32((s / cfg.K % 2) * (cfg.E - 1))
				r.Weights[s] = 0.5
			}
		}
		c, err := moe.Generate(cfg, r, seed, moe.DataModes()[seed%4])
		if err != nil {
			t.Fatal(err)
		}
		if seed%7 == 0 { // NaN and ±Inf data: the IEEE fallback GEMM
			c.NonFinite = true
			c.X[0] = math.NaN()
			c.W1[len(c.W1)-1] = math.Inf(1)
			c.DY[len(c.DY)/2] = math.Inf(-1)
		}
		cs = append(cs, c)
	}
	return cs
}

// results lists a result's tensors (and stages) by name.
func results(r *Result) map[string][]float64 {
	m := map[string][]float64{"Y": r.Y, "DX": r.DX, "DW1": r.DW1, "DB1": r.DB1, "DW2": r.DW2, "DB2": r.DB2, "DRW": r.DRW}
	if s := r.Stages; s != nil {
		for k, v := range map[string][]float64{"xs": s.Xs, "h1": s.H1, "act": s.Act, "h2": s.H2, "o": s.O, "d_o": s.DO,
			"drw": s.DRW, "d_h2": s.DH2, "d_act": s.DAct, "d_h1": s.DH1, "d_xs": s.DXs} {
			m[k] = v
		}
	}
	return m
}

// TestSplitBitwise runs each case, its magnitude pass and both with stages, on one goroutine
// and split as finely as the loops allow (ranges of one index on 4 goroutines; ranges of 7
// operations on 3), with NaN-poisoned row buffers, and requires bitwise identical results:
// splitting a loop must not change any element's operations or their order.
func TestSplitBitwise(t *testing.T) {
	for n, c := range parCases(t) {
		for _, sp := range []split{{Workers: 4, MinWork: 1}, {Workers: 3, MinWork: 7}} {
			for _, mag := range []bool{false, true} {
				for _, stages := range []bool{false, true} {
					name := fmt.Sprintf("case-%d/%s/w=%d/min=%d/mag=%v/stages=%v", n, c.Config, sp.Workers, sp.MinWork, mag, stages)
					want, err := runSplit(c, Options{Stages: stages}, mag, true, split{Workers: 1, MinWork: minParWork})
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					got, err := runSplit(c, Options{Stages: stages}, mag, true, sp)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					gm := results(got)
					for k, w := range results(want) {
						g := gm[k]
						if len(g) != len(w) {
							t.Fatalf("%s: %s has %d values, want %d", name, k, len(g), len(w))
						}
						for i := range w {
							if math.Float64bits(g[i]) != math.Float64bits(w[i]) {
								t.Fatalf("%s: %s[%d] = %v split, %v on one goroutine", name, k, i, g[i], w[i])
							}
						}
					}
				}
			}
		}
	}
}
