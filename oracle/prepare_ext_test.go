package oracle_test

import (
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/oracle"
)

// TestPreparedCatalog: on the property suite's case stream (seed 1, the spec's poison
// policy), gpu/sim without a fault and with each catalog fault, judged under exact and torch
// (and without a fault under any), the verdict of a check given the prepared work
// (Checker.Prepare, started before the run as the matches property does; every case
// prepared) is bitwise the verdict without it;
// and without a fault the checks took prepared h1 spans (else this would compare a check
// with itself; with most faults they do too, see the log).
func TestPreparedCatalog(t *testing.T) {
	cases := 50 // every fault but stale-empty-wgrad fails by case 9 (TestCatalogUnderContracts)
	if testing.Short() {
		cases = 12
	}
	forCatalog(t, "prepared", cases, []contract.Contract{contract.Exact(), contract.Torch(), contract.Any()}, func(t *testing.T, ct contract.Contract, faultName string) (func(catalogCase), func()) {
		var plain oracle.Checker
		prep := oracle.PreparingChecker()
		failing := 0
		each := func(cc catalogCase) {
			pre := prep.Prepare(cc.c, oracle.Options{Contract: ct})
			if pre == nil {
				t.Fatalf("case %d: PreparingChecker did not prepare", cc.i)
			}
			defer pre.Close()
			res, ok := cc.run()
			if !ok {
				return
			}
			want, err := plain.Check(cc.c, res, oracle.Options{Contract: ct})
			if err != nil {
				t.Fatal(err)
			}
			got, err := prep.Check(cc.c, res, oracle.Options{Contract: ct, Prepared: pre})
			if err != nil {
				t.Fatal(err)
			}
			if !want.Pass {
				failing++
			}
			sameVerdict(t, cc, "with the prepared work", want, got)
		}
		end := func() {
			// A fault that breaks the plan (exclusive-offsets) or crashes every run never
			// reaches stage h1; the others mostly do.
			if faultName == "none" && prep.PreparedHits() == 0 {
				t.Errorf("no check took a prepared h1 span in %d cases", cases)
			}
			t.Logf("%d cases, %d failing, %d prepared h1 spans taken", cases, failing, prep.PreparedHits())
		}
		return each, end
	})
}
