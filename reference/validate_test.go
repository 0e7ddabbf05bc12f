package reference_test

import (
	"math"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// TestInvalidCases checks that Run and Magnitude reject bad input with an error naming the
// problem, and never panic.
func TestInvalidCases(t *testing.T) {
	good := func() *moe.Case {
		cfg := moe.Config{T: 4, H: 3, I: 2, E: 2, K: 2, DType: moe.BF16, Bias: true}
		return casetest.Case(t, cfg, 1)
	}
	tests := []struct {
		name string
		edit func(c *moe.Case) *moe.Case
		opts reference.Options
		want string
	}{
		{"nil", func(*moe.Case) *moe.Case { return nil }, reference.Options{}, "nil case"},
		{"short-X", func(c *moe.Case) *moe.Case { c.X = c.X[1:]; return c }, reference.Options{}, "X (hidden) has 11 values, want 12"},
		{"long-W2", func(c *moe.Case) *moe.Case { c.W2 = append(c.W2, 0); return c }, reference.Options{}, "W2 (down_proj)"},
		{"missing-B1", func(c *moe.Case) *moe.Case { c.B1 = nil; return c }, reference.Options{}, "B1"},
		{"bias-off-with-biases", func(c *moe.Case) *moe.Case { c.Bias = false; return c }, reference.Options{}, "biases given but Bias is off"},
		{"nan-X", func(c *moe.Case) *moe.Case { c.X[5] = math.NaN(); return c }, reference.Options{}, "non-finite data needs NonFinite"},
		{"inf-DY", func(c *moe.Case) *moe.Case { c.DY[0] = math.Inf(-1); return c }, reference.Options{}, "dY[0] = -Inf"},
		{"nan-weight", func(c *moe.Case) *moe.Case { c.Routing.Weights[3] = math.NaN(); return c }, reference.Options{}, "weights must be finite"},
		{"nan-weight-nonfinite", func(c *moe.Case) *moe.Case {
			c.NonFinite = true
			c.Routing.Weights[3] = math.NaN()
			return c
		}, reference.Options{}, "weights must be finite"},
		{"id-too-large", func(c *moe.Case) *moe.Case { c.Routing.IDs[2] = 3; return c }, reference.Options{}, "routing id 3 at token 1 slot 0 outside [0, 2]"},
		{"id-negative", func(c *moe.Case) *moe.Case { c.Routing.IDs[7] = -1; return c }, reference.Options{}, "routing id -1"},
		{"short-routing", func(c *moe.Case) *moe.Case { c.Routing.IDs = c.Routing.IDs[:7]; return c }, reference.Options{}, "routing has 7 ids"},
		{"not-bf16", func(c *moe.Case) *moe.Case { c.W1[0] = 0.1; return c }, reference.Options{}, "is not a bf16 value"},
		{"over-limit", func(c *moe.Case) *moe.Case { return c }, reference.Options{Limits: moe.Limits{MaxT: 2}}, "T (tokens) = 4 exceeds the limit 2"},
		{"zero-K", func(c *moe.Case) *moe.Case { c.K = 0; return c }, reference.Options{}, "K (top-k) = 0"},
		{"bad-ep-rank", func(c *moe.Case) *moe.Case { c.EP = moe.EP{World: 2, Rank: 2}; return c }, reference.Options{}, "EP rank 2"},
		{"global-mismatch", func(c *moe.Case) *moe.Case {
			c.Global = &moe.GlobalRouting{IDs: make([]int64, c.S()), Weights: make([]float64, c.S())}
			return c
		}, reference.Options{}, "differs from the map of the global routing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range []func(*moe.Case, reference.Options) (*reference.Result, error){reference.Run, reference.Magnitude} {
				res, err := f(tt.edit(good()), tt.opts)
				if err == nil || res != nil {
					t.Fatalf("got result %v, error %v; want error containing %q", res != nil, err, tt.want)
				}
				if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "reference: ") {
					t.Errorf("error %q does not contain %q", err, tt.want)
				}
			}
		})
	}
}
