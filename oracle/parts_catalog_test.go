package oracle_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/f64gemm"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
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
	faults := append([]fault.Info{{Name: "none"}}, fault.Catalog()...)
	for _, ct := range []contract.Contract{contract.Exact(), contract.Torch()} {
		for _, fi := range faults {
			t.Run(fmt.Sprintf("parts/%s/%s", ct.Name, fi.Name), func(t *testing.T) {
				t.Parallel()
				var fs fault.Set
				if fi.Name != "none" {
					fs = fault.Of(fi.Fault)
				}
				b := sim.New(sim.Options{}) // fresh: the stale poison policy reads the previous run's buffers
				whole, _ := oracle.PartsChecker(true)
				parts, split := oracle.PartsChecker(false)
				failing, inParts := 0, 0
				for i := range cases {
					spec, _ := props.SpecAt(1, i, props.GenOptions{})
					c, err := spec.Build()
					if err != nil {
						t.Fatal(err)
					}
					res, err := fault.Run(context.Background(), b, c, gpu.RunOptions{Poison: spec.PoisonPolicy(), PoisonSeed: 1, Stages: true}, fs)
					if err != nil {
						if _, ok := gpu.AsCaseError(err); ok {
							continue
						}
						t.Fatal(err)
					}
					want, err := whole.Check(c, res, oracle.Options{Contract: ct})
					if err != nil {
						t.Fatal(err)
					}
					got, err := parts.Check(c, res, oracle.Options{Contract: ct})
					if err != nil {
						t.Fatal(err)
					}
					inParts += split()
					if !want.Pass {
						failing++
					}
					if w, g := fmt.Sprintf("%+v", *want), fmt.Sprintf("%+v", *got); w != g {
						t.Fatalf("case %d (%s): the verdict in parts differs:\nwhole %s\nparts %s", i, spec, w, g)
					}
				}
				if fi.Name == "none" && inParts == 0 {
					t.Errorf("no expert ran in parts in %d cases: the test compares whole experts with themselves", cases)
				}
				t.Logf("%d cases, %d failing, %d stage/expert pairs in parts", cases, failing, inParts)
			})
		}
	}
}
