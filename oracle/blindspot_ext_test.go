package oracle_test

import (
	"context"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/reference"
)

// TestLargeSwiGLUBlindSpots: on large data with SwiGLU (data near 2³¹), the end-to-end
// enclosure leaves no element unconstrained where the float64 reference is in range, passes
// the correct path, and fails outputs scaled by a factor (faults the suite had passed: in
// fp32 every y element was unconstrained; in bf16 dX radii reached 10⁵× the value).
func TestLargeSwiGLUBlindSpots(t *testing.T) {
	b := sim.New(sim.Options{})
	for _, tc := range []struct {
		name   string
		d      moe.DType
		tensor string
		scale  float32
	}{
		{"fp32-y-x2", moe.FP32, "y", 2},
		{"fp32-dX-x2", moe.FP32, "dX", 2},
		{"fp32-dW1-x2", moe.FP32, "dW1", 2},
		{"bf16-dX-x2.5", moe.BF16, "dX", 2.5},
		{"bf16-dW1-x2.5", moe.BF16, "dW1", 2.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := moe.Config{T: 16, H: 128, I: 64, E: 4, K: 4, DType: tc.d}
			c := casetest.CaseMode(t, cfg, 1, moe.Large)
			en, err := oracle.Enclose(c)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := reference.Run(c, reference.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range oracle.Sharpness(c, en, ref) {
				if s.Blind() != 0 {
					t.Errorf("%s: %d of %d elements unconstrained where the reference is in range", s.Tensor, s.Blind(), s.N)
				}
			}
			res, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
			if err != nil {
				t.Fatal(err)
			}
			v, err := oracle.Check(c, res, oracle.Options{Enclosure: en, SkipStages: true})
			if err != nil {
				t.Fatal(err)
			}
			if !v.Pass {
				t.Fatalf("false alarm: %s", v.Summary())
			}
			var x []float32
			switch tc.tensor {
			case "y":
				x = res.Y
			case "dX":
				x = res.DX
			case "dW1":
				x = res.DW1
			}
			for i := range x {
				x[i] *= tc.scale
			}
			v, err = oracle.Check(c, res, oracle.Options{Enclosure: en, SkipStages: true})
			if err != nil {
				t.Fatal(err)
			}
			if v.Pass {
				t.Errorf("%s scaled by %v passed end to end", tc.tensor, tc.scale)
			}
		})
	}
}
