package oracle_test

import (
	"math"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

// TestTensorCoreSubnormalAlignment replays what the property suite found on an H200
// (docs/oracle.md §2.3): in this fp16 case dW2[2795] (expert 2, rows 7..11) is a 5-term dot
// product whose exact value is −24.4975 units of 2^-24 (an fp16 subnormal) and whose
// operands include fp16 subnormals. gpu/sim (IEEE fp32) stores −24 units; the GPU's
// mma.sync stored −25, because the tensor core aligned the products to the nominal exponent
// of a subnormal operand (2^-14·226.875) and truncated the others. The bound must admit
// both, and still refuse a value two units away.
func TestTensorCoreSubnormalAlignment(t *testing.T) {
	sp, err := props.ParseSpec("T=14 H=40 I=24 E=4 K=2 world=1 rank=0 global=0 dtype=fp16 act=swiglu layout=standard bias=1 routing=nowhere weights=tiny data=large poison=zeros seed=920189538")
	if err != nil {
		t.Fatal(err)
	}
	c, err := sp.Build()
	if err != nil {
		t.Fatal(err)
	}
	const at = 2795
	unit := math.Ldexp(1, -24)
	for _, tc := range []struct {
		name  string
		units float64 // dW2[at] in units of 2^-24 (nil change: the sim's own value, −24)
		pass  bool
	}{
		{"tc-subnormal/sim-value", -24, true},
		{"tc-subnormal/h200-value", -25, true},
		{"tc-subnormal/two-units-off", -26, false},
		{"tc-subnormal/other-side", -23, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := casetest.SimRun(t, c, gpu.RunOptions{Stages: true, Poison: gpu.PoisonNaN})
			if got := float64(res.DW2[at]) / unit; got != -24 {
				t.Fatalf("sim dW2[%d] = %v units, want −24 (case changed?)", at, got)
			}
			res.DW2[at] = float32(tc.units * unit)
			for _, skip := range []bool{false, true} {
				v, err := oracle.Check(c, res, oracle.Options{SkipStages: skip})
				if err != nil {
					t.Fatal(err)
				}
				if v.Pass != tc.pass {
					t.Errorf("stage-local=%v: pass = %v, want %v: %s", !skip, v.Pass, tc.pass, v.Summary())
				}
			}
		})
	}
}
