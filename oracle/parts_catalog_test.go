package oracle_test

import (
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/internal/f64gemm"
	"github.com/moecheck/moecheck/oracle"
)

// TestPartsCatalog: on the property suite's case stream (seed 1, the spec's poison policy),
// gpu/sim without a fault and with each catalog fault, under exact and torch, a check with
// every expert split into as many parts as the stages allow gives bitwise the verdict of
// one task per expert — no false alarm and no missed fault from the parts (the default
// generator's experts are far below the parts' real size, so only forced parts exercise
// them on this stream). Bitwise only where an element's bits do not depend on its row's
// position (f64gemm.RowExact, the default build); under OpenBLAS TestPartsWorkerFree holds
// the parts to the same verdict on every worker count instead.
func TestPartsCatalog(t *testing.T) {
	if !f64gemm.RowExact {
		t.Skip("parts change an element's bits in this GEMM build (f64gemm.RowExact false)")
	}
	cases := 40
	if testing.Short() {
		cases = 10
	}
	forCatalog(t, "parts", cases, []contract.Contract{contract.Exact(), contract.Torch()}, func(t *testing.T, ct contract.Contract, faultName string) (func(catalogCase), func()) {
		whole, _ := oracle.PartsChecker(true)
		parts, split := oracle.PartsChecker(false)
		failing, inParts := 0, 0
		each := func(cc catalogCase) {
			res, ok := cc.run()
			if !ok {
				return
			}
			want, err := whole.Check(cc.c, res, oracle.Options{Contract: ct})
			if err != nil {
				t.Fatal(err)
			}
			got, err := parts.Check(cc.c, res, oracle.Options{Contract: ct})
			if err != nil {
				t.Fatal(err)
			}
			inParts += split()
			if !want.Pass {
				failing++
			}
			sameVerdict(t, cc, "in parts", want, got)
		}
		end := func() {
			if faultName == "none" && inParts == 0 {
				t.Errorf("no expert ran in parts in %d cases: the test compares whole experts with themselves", cases)
			}
			t.Logf("%d cases, %d failing, %d stage/expert pairs in parts", cases, failing, inParts)
		}
		return each, end
	})
}
