package reference

import (
	"math"
	"testing"

	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
)

// TestPoisonedBuffers runs small cases with every expert's row buffers NaN-filled before
// the expert runs (as the path's buffers are poisoned): the outputs must be bitwise those of
// an ordinary run, so no buffer element is read before it is written, with or without stages.
func TestPoisonedBuffers(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		rng := moe.NewRand(seed)
		cfg := moe.Config{T: 1 + rng.IntN(6), H: 1 + rng.IntN(5), I: 1 + rng.IntN(4), E: 1 + rng.IntN(4), K: 1 + rng.IntN(3),
			Act: moe.Activation(rng.IntN(2)), Layout: moe.Layout(rng.IntN(2)), DType: moe.FP32, Bias: rng.IntN(2) == 0,
			EP: moe.EP{World: 2, Rank: rng.IntN(2)}}
		c := casetest.Case(t, cfg, seed)
		for _, mag := range []bool{false, true} {
			for _, stages := range []bool{false, true} {
				a, err := run(c, Options{Stages: stages}, mag, false)
				if err != nil {
					t.Fatal(err)
				}
				b, err := run(c, Options{Stages: stages}, mag, true)
				if err != nil {
					t.Fatal(err)
				}
				for i, pair := range [][2][]float64{{a.Y, b.Y}, {a.DX, b.DX}, {a.DW1, b.DW1}, {a.DW2, b.DW2}, {a.DB1, b.DB1}, {a.DB2, b.DB2}, {a.DRW, b.DRW}} {
					for j := range pair[0] {
						if math.Float64bits(pair[0][j]) != math.Float64bits(pair[1][j]) {
							t.Fatalf("seed %d (%s, magnitude %v, stages %v): output %d element %d: %v clean, %v poisoned",
								seed, cfg, mag, stages, i, j, pair[0][j], pair[1][j])
						}
					}
				}
			}
		}
	}
}
