package simtorch

import (
	"context"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/props"
)

// TestSuiteUnderContracts: the whole property suite judges sim-torch under the contract it
// declares (torch) and passes; overridden with exact it fails at once (the model makes
// torch's rounding choices, which exact does not admit), so the weakened comparisons are not
// vacuous: it is the contract, not a loosened suite, that lets sim-torch pass.
func TestSuiteUnderContracts(t *testing.T) {
	n := 60
	if testing.Short() {
		n = 20
	}
	exact := contract.Exact()
	for _, tc := range []struct {
		name     string
		contract *contract.Contract
		fail     bool
	}{{"Suite/torch", nil, false}, {"Suite/exact", &exact, true}} {
		t.Run(tc.name, func(t *testing.T) {
			env := &props.Env{Backend: New(Options{}), Contract: tc.contract,
				New: func() (gpu.Backend, error) { return New(Options{Seed: 99}), nil }}
			rep, err := props.Run(context.Background(), props.RunConfig{Env: env, Seed: 1, Cases: n, NoShrink: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(rep.Failures) > 0; got != tc.fail {
				msg := ""
				if got {
					msg = rep.Failures[0].Failed.Message
				}
				t.Fatalf("%s: failed = %v after %d cases, want %v (%s)", tc.name, got, rep.Cases, tc.fail, msg)
			}
			t.Logf("%s: %d cases, %d failures", tc.name, rep.Cases, len(rep.Failures))
		})
	}
}

// TestJudgementsUnderTorch: under torch (no bitwise promise) every metamorphic property that
// rests on a promise says how it judges instead; under exact none does.
func TestJudgementsUnderTorch(t *testing.T) {
	weak := map[string]bool{"deterministic": true, "poison-invariance": true, "token-permutation": true,
		"zero-weight-is-sentinel": true, "power-of-two-scaling": true, "history": true, "ep-split-sum": true}
	for _, p := range props.All() {
		j := props.Judgement(p, contract.Torch())
		if (j != "") != weak[p.Name] {
			t.Errorf("Judgement/torch: %s: %q, want a note: %v", p.Name, j, weak[p.Name])
		}
		if j != "" && !strings.Contains(j, "torch") {
			t.Errorf("Judgement/torch: %s: %q does not name the contract", p.Name, j)
		}
		if j := props.Judgement(p, contract.Exact()); j != "" {
			t.Errorf("Judgement/exact: %s: %q, want bitwise as documented", p.Name, j)
		}
	}
}

// TestPromiseMatters: sim-torch's atomics add in a different order on every run, so a
// contract that promised bitwise reruns would fail it in the deterministic property: the
// promise decides whether that property compares bitwise.
func TestPromiseMatters(t *testing.T) {
	ct := contract.Torch()
	ct.Promises.Deterministic = true
	p, err := props.ByName("deterministic")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ct   contract.Contract
		fail bool
	}{{"Promise/torch", contract.Torch(), false}, {"Promise/torch+deterministic", ct, true}} {
		env := &props.Env{Backend: New(Options{}), Contract: &tc.ct}
		rep, err := props.Run(context.Background(), props.RunConfig{Env: env, Properties: []props.Property{p}, Seed: 1, Cases: 100, NoShrink: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(rep.Failures) > 0; got != tc.fail {
			t.Errorf("%s: failed = %v after %d cases, want %v", tc.name, got, rep.Cases, tc.fail)
		}
	}
}
