package oracle_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
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
	faults := []fault.Info{{Name: "none"}}
	faults = append(faults, fault.Catalog()...)
	for _, ct := range []contract.Contract{contract.Exact(), contract.Torch(), contract.Any()} {
		for _, fi := range faults {
			if ct.Name == "any" && fi.Name != "none" {
				continue // any: the run without a fault only, to keep the test short
			}
			t.Run(fmt.Sprintf("%s/%s", ct.Name, fi.Name), func(t *testing.T) {
				t.Parallel() // each with its own backend and checkers
				var fs fault.Set
				if fi.Name != "none" {
					fs = fault.Of(fi.Fault)
				}
				b := sim.New(sim.Options{}) // fresh: the stale poison policy reads the previous run's buffers
				var plain oracle.Checker
				prep := oracle.PreparingChecker()
				failing := 0
				for i := range cases {
					spec, _ := props.SpecAt(1, i, props.GenOptions{})
					c, err := spec.Build()
					if err != nil {
						t.Fatal(err)
					}
					pre := prep.Prepare(c, oracle.Options{Contract: ct})
					if pre == nil {
						t.Fatalf("case %d: PreparingChecker did not prepare", i)
					}
					res, err := fault.Run(context.Background(), b, c, gpu.RunOptions{Poison: spec.PoisonPolicy(), PoisonSeed: 1, Stages: true}, fs)
					if err != nil {
						pre.Close()
						if _, ok := gpu.AsCaseError(err); ok {
							continue
						}
						t.Fatal(err)
					}
					want, err := plain.Check(c, res, oracle.Options{Contract: ct})
					if err != nil {
						t.Fatal(err)
					}
					got, err := prep.Check(c, res, oracle.Options{Contract: ct, Prepared: pre})
					pre.Close()
					if err != nil {
						t.Fatal(err)
					}
					if !want.Pass {
						failing++
					}
					if w, g := fmt.Sprintf("%+v", *want), fmt.Sprintf("%+v", *got); w != g {
						t.Fatalf("case %d (%s): the verdict with the prepared work differs:\nwithout %s\nwith    %s", i, spec, w, g)
					}
				}
				// A fault that breaks the plan (exclusive-offsets) or crashes every run
				// never reaches stage h1; the others mostly do.
				if fi.Name == "none" && prep.PreparedHits() == 0 {
					t.Errorf("no check took a prepared h1 span in %d cases", cases)
				}
				t.Logf("%d cases, %d failing, %d prepared h1 spans taken", cases, failing, prep.PreparedHits())
			})
		}
	}
}
