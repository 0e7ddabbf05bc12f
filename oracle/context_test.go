package oracle_test

import (
	"math"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// A failing verdict gets the float64 reference context (RelFro, CalcDiff) unless the
// reference's work is over Options.ContextWork; then it says so, and the context is NaN.
// Asking for the context (Context) computes it whatever the bound.
func TestContextWorkBound(t *testing.T) {
	cfg := moe.Config{T: 16, H: 32, I: 16, E: 3, K: 2, DType: moe.BF16}
	c := casetest.Case(t, cfg, 3)
	got := casetest.SimRun(t, c, gpu.RunOptions{Poison: gpu.PoisonNaN})
	got.Y[5] += 1                                              // a wrong output: the verdict fails
	work := 18.0 * float64(cfg.T*cfg.K) * float64(cfg.H*cfg.I) // every slot is local here
	for _, tc := range []struct {
		name    string
		opts    oracle.Options
		skipped bool
	}{
		{"bound/default", oracle.Options{}, false},
		{"bound/below", oracle.Options{ContextWork: int64(work) - 1}, true},
		{"bound/at", oracle.Options{ContextWork: int64(work)}, false},
		{"bound/none", oracle.Options{ContextWork: -1}, false},
		{"asked", oracle.Options{ContextWork: 1, Context: true}, false},
	} {
		v, err := oracle.Check(c, got, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if v.Pass {
			t.Fatalf("%s: a wrong y passed", tc.name)
		}
		rel := math.NaN()
		for _, s := range v.Stats {
			if s.Tensor == moe.TensorY && !s.Local {
				rel = s.RelFro
			}
		}
		if skipped := v.ContextSkipped != ""; skipped != tc.skipped || math.IsNaN(rel) != tc.skipped {
			t.Errorf("%s: ContextSkipped %q, RelFro(y) %v; want skipped %v", tc.name, v.ContextSkipped, rel, tc.skipped)
		}
		var b strings.Builder
		if err := v.Write(&b); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), "context:") != tc.skipped {
			t.Errorf("%s: Write does not say whether the context was left out:\n%s", tc.name, b.String())
		}
	}
}
