package contract_test

import (
	"testing"

	"github.com/moecheck/moecheck/contract"
)

func TestByName(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            bool
	}{
		{"exact", "exact", "exact", false},
		{"empty-is-exact", "", "exact", false},
		{"torch-case", " Torch ", "torch", false},
		{"any", "any", "any", false},
		{"unknown", "loose", "", true},
	} {
		c, err := contract.ByName(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if !tc.err && c.String() != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, c, tc.want)
		}
	}
	if contract.Exact().Promises != (contract.Promises{Deterministic: true, BatchInvariant: true, PermutationInvariant: true, ZeroWeightIsSentinel: true}) {
		t.Error("exact must promise everything bitwise")
	}
	if contract.Torch().Promises != (contract.Promises{}) || contract.Any().Promises != (contract.Promises{}) {
		t.Error("torch and any promise nothing bitwise")
	}
}

func TestByNameModifiers(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		tf32, bf, fp   bool
		err            bool
	}{
		{"mod-both", "torch+reduced-precision-reduction", "torch+reduced-precision-reduction", false, true, true, false},
		{"mod-bf16", "torch+bf16-reduced-precision-reduction", "torch+bf16-reduced-precision-reduction", false, true, false, false},
		{"mod-fp16", "Torch + fp16-reduced-precision-reduction", "torch+fp16-reduced-precision-reduction", false, false, true, false},
		{"mod-both-spelled-apart", "torch+fp16-reduced-precision-reduction+bf16-reduced-precision-reduction", "torch+reduced-precision-reduction", false, true, true, false},
		{"mod-tf32-first", "any+reduced-precision-reduction+tf32", "any+tf32+reduced-precision-reduction", true, true, true, false},
		{"mod-exact", "exact+tf32", "exact+tf32", true, false, false, false},
		{"mod-unknown", "torch+fast", "", false, false, false, true},
		{"mod-no-base", "+tf32", "", false, false, false, true},
		{"mod-too-many", "torch+tf32+tf32+tf32+tf32+tf32", "", false, false, false, true},
	} {
		c, err := contract.ByName(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if tc.err {
			continue
		}
		if c.String() != tc.want || c.TF32 != tc.tf32 || c.ReducedPrecisionReduction != (contract.Reduced{BF16: tc.bf, FP16: tc.fp}) {
			t.Errorf("%s: got %s %+v", tc.name, c, c)
		}
		// the canonical name reads back as the same contract
		if back, err := contract.ByName(c.String()); err != nil || back != c {
			t.Errorf("%s: %s does not read back (%v)", tc.name, c, err)
		}
	}
	w := contract.Torch().WithReduced(contract.Reduced{FP16: true})
	if w.String() != "torch+fp16-reduced-precision-reduction" || !w.ReducedPrecisionReduction.FP16 || w.ReducedPrecisionReduction.BF16 {
		t.Errorf("WithReduced: %s %+v", w, w.ReducedPrecisionReduction)
	}
	if w = w.WithReduced(contract.Reduced{BF16: true}); w.String() != "torch+reduced-precision-reduction" {
		t.Errorf("WithReduced twice: %s", w)
	}
}
