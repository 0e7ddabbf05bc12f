package props

import (
	"context"
	"fmt"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/tokperm"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// verdictText is a verdict as text (NaN statistics compare equal, unlike reflect.DeepEqual).
func verdictText(v *oracle.Verdict) string {
	w := *v
	w.Sample = nil
	return fmt.Sprintf("%+v", w)
}

// TestTokenPermutationDerivedVerdict: token-permutation's check of its permuted run, derived
// from matches' judgement of the base run (oracle.Options.Derive), gives the full check's
// verdict — failures, locations, bounds, statistics — on the generator's cases under every
// contract, with and without each fault of the catalog, under the cases' poison policies and
// NaN poison; and on the same runs with one element of one stage row of the permuted run
// changed (a fault that strikes the permuted run only), which the derived check must judge.
// On correct runs every stage-local comparison is derived.
func TestTokenPermutationDerivedVerdict(t *testing.T) {
	if !oracle.Derives {
		t.Skip("this build derives no verdict (oracle.Derives)")
	}
	sets := []fault.Set{0}
	for _, in := range fault.Catalog() {
		if in.Fault != fault.Crash {
			sets = append(sets, fault.Of(in.Fault))
		}
	}
	cts := []contract.Contract{contract.Exact(), contract.Torch(), contract.Any()}
	n := 10
	if testing.Short() {
		n = 3
	}
	ctx := context.Background()
	derivedAny, judgedFaulty, compared := false, 0, 0
	for si, fs := range sets {
		for ci, ct := range cts {
			if fs != 0 && ci != si%len(cts) {
				continue // each fault under one contract, in turn
			}
			for _, seed := range []uint64{3, 17} {
				for i := 0; i < n; i++ {
					spec, _ := SpecAt(seed, i, GenOptions{})
					tr, err := SpecTrial(spec)
					if err != nil || tr.Case.T < 2 {
						continue
					}
					poison := tr.Poison
					if i%2 == 1 {
						poison = gpu.PoisonNaN
					}
					name := fmt.Sprintf("%s/%s/seed-%d/case-%d", fs, ct.Name, seed, i)
					ct := ct
					env := &Env{Backend: sim.New(sim.Options{}), Faults: fs, Contract: &ct}
					c := tr.Case
					if err := env.begin(c, nil); err != nil {
						t.Fatal(err)
					}
					a, o, err := env.baseRun(ctx, "test", c, poison)
					if err != nil {
						t.Fatal(err)
					}
					if o != nil {
						env.end()
						continue // a case error (the fault crashes the run)
					}
					va, err := env.checkBase(c, a, poison, nil)
					if err != nil {
						t.Fatal(err)
					}
					j := env.judgedBase(c, poison)
					if (j != nil) != va.Pass {
						t.Fatalf("%s: judged %v for a verdict that passes %v", name, j != nil, va.Pass)
					}
					if j == nil {
						env.end()
						continue // nothing to derive from: the full check runs (transform.go)
					}
					if fs != 0 {
						judgedFaulty++
					}
					perm := moe.NewRand(uint64(c.T)*7919 + 17).Perm(c.T)
					pc := tokperm.Permute(c, perm)
					b, o, err := env.run(ctx, "test", pc, poison, 5)
					if err != nil || o != nil {
						t.Fatalf("%s: permuted run: %v %v", name, o, err)
					}
					same := func(what string, b *gpu.Result) {
						full, err := env.check(pc, b, oracle.Options{})
						if err != nil {
							t.Fatal(err)
						}
						before := env.checker.Derived()
						got, err := env.check(pc, b, oracle.Options{Derive: &oracle.Derivation{From: j, Perm: perm}})
						if err != nil {
							t.Fatal(err)
						}
						compared++
						if verdictText(got) != verdictText(full) {
							t.Fatalf("%s %s: derived verdict differs from the full check's:\nderived %s\nfull    %s", name, what, verdictText(got), verdictText(full))
						}
						d := env.checker.Derived() - before
						derivedAny = derivedAny || d > 0
						if fs == 0 && what == "run" && d != 13 {
							t.Fatalf("%s: %d stage-local comparisons derived on a correct run, want 13", name, d)
						}
					}
					same("run", b)
					// one element of one real row of h1 changed in the permuted run only
					p, _ := pc.Plan()
					if p.Rows > 0 {
						m := *b
						st := *b.Stages
						st.H1 = append([]float32(nil), st.H1...)
						st.H1[(p.Rows/2)*2*pc.I+1] = 3*st.H1[(p.Rows/2)*2*pc.I+1] + 1
						m.Stages = &st
						same("changed h1 row", &m)
					}
					env.end()
				}
			}
		}
	}
	t.Logf("%d verdicts compared, %d of runs under a fault that passed matches", compared, judgedFaulty)
	if !derivedAny || judgedFaulty == 0 {
		t.Fatalf("derived anything: %v; faulty runs that passed matches: %d: the test does not exercise the derivation", derivedAny, judgedFaulty)
	}
}
