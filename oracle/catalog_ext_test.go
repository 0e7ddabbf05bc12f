package oracle_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

// catalogCase is one case of forCatalog's stream: its index, spec and case, and run, the
// faulted sim run (false: the run failed as a case, e.g. the crash fault; skip the case).
type catalogCase struct {
	i    int
	spec props.Spec
	c    *moe.Case
	run  func() (*gpu.Result, bool)
}

// forCatalog runs a parallel subtest "prefix/contract/fault" for every contract of cts and
// gpu/sim without a fault and with each catalog fault (under the contract "any", without a
// fault only, to keep tests short), each on a fresh sim backend (the stale poison policy
// reads the previous run's buffers) over the first cases cases of the property suite's
// stream (seed 1, the spec's poison policy): open makes the subtest's per-case function and
// its end (nil: none), which runs after the last case.
func forCatalog(t *testing.T, prefix string, cases int, cts []contract.Contract, open func(t *testing.T, ct contract.Contract, faultName string) (each func(cc catalogCase), end func())) {
	faults := append([]fault.Info{{Name: "none"}}, fault.Catalog()...)
	for _, ct := range cts {
		for _, fi := range faults {
			if ct.Name == "any" && fi.Name != "none" {
				continue
			}
			t.Run(fmt.Sprintf("%s/%s/%s", prefix, ct.Name, fi.Name), func(t *testing.T) {
				t.Parallel() // each with its own backend and checkers
				var fs fault.Set
				if fi.Name != "none" {
					fs = fault.Of(fi.Fault)
				}
				b := sim.New(sim.Options{})
				each, end := open(t, ct, fi.Name)
				for i := range cases {
					spec, _ := props.SpecAt(1, i, props.GenOptions{})
					c, err := spec.Build()
					if err != nil {
						t.Fatal(err)
					}
					each(catalogCase{i, spec, c, func() (*gpu.Result, bool) {
						res, err := fault.Run(context.Background(), b, c, gpu.RunOptions{Poison: spec.PoisonPolicy(), PoisonSeed: 1, Stages: true}, fs)
						if err != nil {
							if _, ok := gpu.AsCaseError(err); !ok {
								t.Fatal(err)
							}
							return nil, false
						}
						return res, true
					}})
				}
				if end != nil {
					end()
				}
			})
		}
	}
}

// sameVerdict fails the test when verdicts want and got differ in any field.
func sameVerdict(t *testing.T, cc catalogCase, what string, want, got *oracle.Verdict) {
	t.Helper()
	if w, g := fmt.Sprintf("%+v", *want), fmt.Sprintf("%+v", *got); w != g {
		t.Fatalf("case %d (%s): the verdict %s differs:\nwant %s\ngot  %s", cc.i, cc.spec, what, w, g)
	}
}
