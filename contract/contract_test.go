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
