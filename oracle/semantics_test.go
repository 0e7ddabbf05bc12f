package oracle

import (
	"math"
	"testing"

	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// TestEnclosureSemanticsMatchReference: evaluated without rounding, the enclosure's chain of
// stages (written from docs/path.md) computes the same function as the independently written
// float64 reference, for every output, on cases covering sentinels, empty experts,
// duplicates, EP, both activations and layouts, biases. Tolerance: both are float64
// evaluations of the same sums in different orders; each output element is a composition of
// at most 4 reductions of at most n = max(H, 2I, rows) terms, so the difference is at most
// about 4·n·2^-53·M (M = the reference's magnitude pass) — below 1e-11·(M+1) for n ≤ 2^12.
func TestEnclosureSemanticsMatchReference(t *testing.T) {
	for seed := uint64(0); seed < 120; seed++ {
		rng := moe.NewRand(seed)
		cfg := moe.Config{T: 1 + rng.IntN(12), H: 1 + rng.IntN(20), I: 1 + rng.IntN(20), E: 1 + rng.IntN(5), K: 1 + rng.IntN(4),
			EP: moe.EP{World: 1 + rng.IntN(3)}, Act: moe.Activation(rng.IntN(2)), Layout: moe.Layout(rng.IntN(2)),
			DType: moe.DTypes()[rng.IntN(3)], Bias: rng.IntN(2) == 0}
		cfg.EP.Rank = rng.IntN(cfg.EP.World)
		r, err := moe.RandomRouting(cfg, seed)
		if err != nil {
			t.Fatal(err)
		}
		if seed%5 == 0 { // duplicates and all-sentinel tokens
			for s := range r.IDs {
				if s%cfg.K != 0 {
					r.IDs[s] = r.IDs[s-s%cfg.K]
					r.Weights[s] = r.Weights[s-s%cfg.K]
				}
			}
		}
		// Normal, large and subnormal data (not integer): integer data puts gpt-oss gates exactly
		// on the clamp point 7, where the mathematical mode's vanishing input radius still
		// straddles the kink and the enclosure (rightly) takes the hull of both branches.
		mode := []moe.DataMode{moe.Normal, moe.Large, moe.Subnormal}[seed%3]
		c, err := moe.Generate(cfg, r, seed, mode)
		if err != nil {
			t.Fatal(err)
		}
		en, err := enclose(c, true)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := reference.Run(c, reference.Options{})
		if err != nil {
			t.Fatal(err)
		}
		mag, err := reference.Magnitude(c, reference.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range []struct {
			name     string
			enc      ivec
			ref, mag []float64
		}{{"y", en.Y, ref.Y, mag.Y}, {"dX", en.DX, ref.DX, mag.DX}, {"dW1", en.DW1, ref.DW1, mag.DW1}, {"dW2", en.DW2, ref.DW2, mag.DW2},
			{"dB1", en.DB1, ref.DB1, mag.DB1}, {"dB2", en.DB2, ref.DB2, mag.DB2}, {"drw", en.DRW, ref.DRW, mag.DRW}} {
			if len(x.enc.c) != len(x.ref) {
				t.Fatalf("seed %d %s: lengths %d vs %d", seed, x.name, len(x.enc.c), len(x.ref))
			}
			for i := range x.ref {
				if d := math.Abs(x.enc.c[i] - x.ref[i]); d > 1e-11*(x.mag[i]+1) {
					t.Fatalf("seed %d %s %s[%d]: enclosure center %v, reference %v (diff %v, magnitude %v)", seed, c.Config, x.name, i, x.enc.c[i], x.ref[i], d, x.mag[i])
				}
			}
		}
	}
}
