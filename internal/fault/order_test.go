package fault

import (
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// TestRunOrder: each case's runs are numbered on their own, whatever runs in between, and a
// case evicted from the window starts again at 0.
func TestRunOrder(t *testing.T) {
	var o RunOrder
	for i, tc := range []struct {
		key  uint64
		want uint64
	}{{1, 0}, {2, 0}, {1, 1}, {1, 2}, {2, 1}, {3, 0}, {1, 3}} {
		if got := o.Next(tc.key); got != tc.want {
			t.Fatalf("order/step-%d: Next(%d) = %d, want %d", i, tc.key, got, tc.want)
		}
	}
	for k := uint64(100); k < 100+runOrderCases; k++ {
		o.Next(k) // pushes 1, 2 and 3 out
	}
	if got := o.Next(1); got != 0 {
		t.Fatalf("order/evicted: Next(1) = %d, want 0", got)
	}
}

// TestCaseKey: equal cases have equal keys; one changed bit of any tensor, routing or config
// changes it.
func TestCaseKey(t *testing.T) {
	cfg := moe.Config{T: 3, H: 4, I: 2, E: 2, K: 2, DType: moe.FP32}
	r := moe.Routing{IDs: []int32{0, 1, 1, 2, 0, 0}, Weights: []float64{0.5, 0.25, 1, 0, 0.75, 0.125}}
	c, err := moe.Generate(cfg, r, 7, moe.Normal)
	if err != nil {
		t.Fatal(err)
	}
	k := CaseKey(c)
	if CaseKey(c.Clone()) != k {
		t.Fatal("key/clone: a copy has another key")
	}
	for _, tc := range []struct {
		name string
		mut  func(d *moe.Case)
	}{
		{"key/x", func(d *moe.Case) { d.X[0] = -d.X[0] + 1 }},
		{"key/w2", func(d *moe.Case) { d.W2[len(d.W2)-1] += 1 }},
		{"key/dy", func(d *moe.Case) { d.DY[0] += 1 }},
		{"key/weight", func(d *moe.Case) { d.Routing.Weights[0] += 1 }},
		{"key/id", func(d *moe.Case) { d.Routing.IDs[0] ^= 1 }},
		{"key/tokens", func(d *moe.Case) { d.T++ }},
	} {
		d := c.Clone()
		tc.mut(d)
		if CaseKey(d) == k {
			t.Errorf("%s: the changed case kept the key", tc.name)
		}
	}
}
