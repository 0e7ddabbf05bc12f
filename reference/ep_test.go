package reference_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// TestEPSplitSum checks expert parallelism against the unsplit layer: with W ranks over
// the same global routing (moe.FromGlobal per rank, each rank holding its slice of the
// experts' weights), Σ_r Y_r = Y, Σ_r DX_r = DX and Σ_r DRW_r = DRW of the W = 1 case with
// all E·W experts, and each rank's weight gradients are its slice of the unsplit ones.
//
// Tolerance: every computed value v̂ of a run is within γ_n·P·M(v) of its exact value, with
// n = S + T + H + 2I + K + 16 the longest chain of operations and P = propagation() (see
// fd_test.go). The ranks' magnitudes partition the unsplit one's terms, so Σ_r M_r = M,
// and adding W values costs γ_W·M more: |Σ_r v̂_r − v̂| ≤ (2γ_n·P + γ_W)·M, doubled as slack.
func TestEPSplitSum(t *testing.T) {
	i := 0
	for _, W := range []int{2, 3, 4} {
		for _, act := range []moe.Activation{moe.SwiGLU, moe.GptOss} {
			for _, layout := range []moe.Layout{moe.Standard, moe.Transposed} {
				i++
				bias, keep := i%2 == 0, i%3 == 0
				name := fmt.Sprintf("W=%d/%s/%s/bias=%v/keep=%v", W, act, layout, bias, keep)
				t.Run(name, func(t *testing.T) { epSplitSum(t, W, act, layout, bias, keep, uint64(i)) })
			}
		}
	}
}

func epSplitSum(t *testing.T, W int, act moe.Activation, layout moe.Layout, bias, keep bool, seed uint64) {
	const E = 3
	full := moe.Config{T: 16, H: 8, I: 6, E: E * W, K: 4, Act: act, Layout: layout, DType: moe.BF16, Bias: bias}
	rng := moe.NewRand(seed)
	S := full.S()
	gids, gw := make([]int64, S), make([]float64, S)
	for s := range gids {
		gids[s] = int64(rng.IntN(full.E))
		if s%full.K > 0 && rng.IntN(4) == 0 {
			gids[s] = gids[s-1] // duplicates across the whole layer
		}
		gw[s] = full.DType.Round(1 - rng.Float64())
	}
	rFull := moe.Routing{IDs: make([]int32, S), Weights: gw}
	for s, g := range gids {
		rFull.IDs[s] = int32(g)
	}
	c, err := moe.Generate(full, rFull, seed, moe.Normal)
	if err != nil {
		t.Fatal(err)
	}
	if act == moe.GptOss {
		for i := range c.X {
			c.X[i] *= 4 // reach the clamps
		}
	}
	want, err := reference.Run(c, reference.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mag, err := reference.Magnitude(c, reference.Options{Stages: true})
	if err != nil {
		t.Fatal(err)
	}
	n := S + full.T + full.H + 2*full.I + full.K + 16
	k := 2 * (2*gamma(n)*propagation(mag) + gamma(W))

	sumY, sumDX, sumDRW := make([]float64, len(want.Y)), make([]float64, len(want.DX)), make([]float64, S)
	for r := 0; r < W; r++ {
		cfg := full
		cfg.E, cfg.EP = E, moe.EP{World: W, Rank: r}
		opts := moe.GlobalOptions{KeepSentinelWeights: keep}
		rr, err := moe.FromGlobal(cfg, gids, gw, opts)
		if err != nil {
			t.Fatal(err)
		}
		w1n, w2n := 2*full.I*full.H, full.H*full.I
		cr := &moe.Case{Config: cfg, Routing: rr, X: c.X, DY: c.DY,
			W1: c.W1[r*E*w1n : (r+1)*E*w1n], W2: c.W2[r*E*w2n : (r+1)*E*w2n],
			Global: &moe.GlobalRouting{IDs: gids, Weights: gw, Options: opts}}
		if bias {
			cr.B1 = c.B1[r*E*2*full.I : (r+1)*E*2*full.I]
			cr.B2 = c.B2[r*E*full.H : (r+1)*E*full.H]
		}
		got, err := reference.Run(cr, reference.Options{})
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		for i := range sumY {
			sumY[i] += got.Y[i]
			sumDX[i] += got.DX[i]
		}
		for s := range sumDRW {
			sumDRW[s] += got.DRW[s]
		}
		slice := func(name string, v, full, m []float64, lo int) {
			t.Helper()
			for i := range v {
				if d := math.Abs(v[i] - full[lo+i]); d > k*m[lo+i] {
					t.Errorf("rank %d: %s[%d] = %v, unsplit %v (diff %.3g > %.3g)", r, name, i, v[i], full[lo+i], d, k*m[lo+i])
				}
			}
		}
		slice("DW1", got.DW1, want.DW1, mag.DW1, r*E*w1n)
		slice("DW2", got.DW2, want.DW2, mag.DW2, r*E*w2n)
		if bias {
			slice("DB1", got.DB1, want.DB1, mag.DB1, r*E*2*full.I)
			slice("DB2", got.DB2, want.DB2, mag.DB2, r*E*full.H)
		}
	}
	compare := func(name string, got, want, m []float64) {
		t.Helper()
		for i := range got {
			if d := math.Abs(got[i] - want[i]); d > k*m[i] {
				t.Errorf("Σ_r %s[%d] = %v, unsplit %v (diff %.3g > %.3g)", name, i, got[i], want[i], d, k*m[i])
			}
		}
	}
	compare("Y", sumY, want.Y, mag.Y)
	compare("DX", sumDX, want.DX, mag.DX)
	compare("DRW", sumDRW, want.DRW, mag.DRW)
}
