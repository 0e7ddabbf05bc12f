package tokperm

import (
	"reflect"
	"testing"

	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
)

// TestPermute: token t's rows (x, dY, routing ids and weights, the global routing's) land at
// perm[t] and nothing else moves; c is left as it was; the inverse permutation gives c back.
func TestPermute(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  moe.Config
	}{
		{"permute/local", moe.Config{T: 7, H: 4, I: 3, E: 3, K: 2, DType: moe.BF16, Bias: true}},
		{"permute/ep", moe.Config{T: 9, H: 3, I: 2, E: 2, K: 3, DType: moe.FP32, EP: moe.EP{World: 2, Rank: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := casetest.CaseSeeds(t, tc.cfg, 3, 4)
			if tc.cfg.EP.World > 1 {
				c.Global = &moe.GlobalRouting{IDs: make([]int64, c.S()), Weights: make([]float64, c.S())}
				for s := range c.Global.IDs {
					c.Global.IDs[s], c.Global.Weights[s] = int64(s%5), float64(s)/8
				}
			}
			orig := c.Clone()
			perm := moe.NewRand(5).Perm(c.T)
			pc := Permute(c, perm)
			if !reflect.DeepEqual(c, orig) {
				t.Fatal("Permute changed its case")
			}
			H, K := c.H, c.K
			for tok, pt := range perm {
				if !reflect.DeepEqual(pc.X[pt*H:(pt+1)*H], c.X[tok*H:(tok+1)*H]) || !reflect.DeepEqual(pc.DY[pt*H:(pt+1)*H], c.DY[tok*H:(tok+1)*H]) ||
					!reflect.DeepEqual(pc.Routing.IDs[pt*K:(pt+1)*K], c.Routing.IDs[tok*K:(tok+1)*K]) ||
					!reflect.DeepEqual(pc.Routing.Weights[pt*K:(pt+1)*K], c.Routing.Weights[tok*K:(tok+1)*K]) {
					t.Fatalf("token %d: its rows are not at %d", tok, pt)
				}
				if c.Global != nil && (!reflect.DeepEqual(pc.Global.IDs[pt*K:(pt+1)*K], c.Global.IDs[tok*K:(tok+1)*K]) ||
					!reflect.DeepEqual(pc.Global.Weights[pt*K:(pt+1)*K], c.Global.Weights[tok*K:(tok+1)*K])) {
					t.Fatalf("token %d: its global routing is not at %d", tok, pt)
				}
			}
			if !reflect.DeepEqual(pc.W1, c.W1) || !reflect.DeepEqual(pc.B2, c.B2) || pc.Config != c.Config {
				t.Fatal("the weights, biases or configuration moved")
			}
			inv := make([]int, len(perm))
			for tok, pt := range perm {
				inv[pt] = tok
			}
			if back := Permute(pc, inv); !reflect.DeepEqual(back, c) {
				t.Fatal("the inverse permutation does not give the case back")
			}
		})
	}
}
