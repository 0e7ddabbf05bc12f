package checked

import (
	"context"
	"math"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
)

func validCase(t *testing.T) *moe.Case {
	t.Helper()
	cfg := moe.Config{T: 8, H: 8, I: 8, E: 2, K: 2}
	r, err := moe.RandomRouting(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := moe.Generate(cfg, r, 2, moe.Normal)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestValidate(t *testing.T) {
	c := validCase(t)
	for _, tc := range []struct {
		name string
		c    *moe.Case
		ok   bool
	}{
		{"ok: valid case", c, true},
		{"bad: nil case", nil, false},
		{"bad: short X", &moe.Case{Config: c.Config, Routing: c.Routing, X: c.X[:1], W1: c.W1, W2: c.W2, DY: c.DY}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := Validate(tc.c)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if tc.ok && k.Case() != tc.c {
				t.Errorf("Case() is not the validated case")
			}
			if !tc.ok && k.Case() != nil {
				t.Errorf("a refused case is held")
			}
		})
	}
}

// counting is a backend with RunChecked; sim has none (Run falls back to fault.Run).
type counting struct {
	*sim.Backend
	checked int
}

func (b *counting) RunChecked(ctx context.Context, k Case, o gpu.RunOptions, fs fault.Set) (*gpu.Result, error) {
	b.checked++
	return fault.Run(ctx, b.Backend, k.Case(), o, fs)
}

func TestRunDispatch(t *testing.T) {
	k, err := Validate(validCase(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	plain, err := Run(ctx, sim.New(sim.Options{}), k, gpu.RunOptions{Poison: gpu.PoisonNaN}, 0)
	if err != nil {
		t.Fatal(err)
	}
	cb := &counting{Backend: sim.New(sim.Options{})}
	viaChecked, err := Run(ctx, cb, k, gpu.RunOptions{Poison: gpu.PoisonNaN}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cb.checked != 1 {
		t.Errorf("RunChecked called %d times, want 1", cb.checked)
	}
	for _, tn := range moe.Outputs() {
		a, b := plain.Tensor(tn), viaChecked.Tensor(tn)
		if len(a) != len(b) {
			t.Fatalf("%s: %d vs %d values", tn, len(a), len(b))
		}
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("%s[%d]: %v vs %v", tn, i, a[i], b[i])
			}
		}
	}
}
