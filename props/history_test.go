package props_test

import (
	"context"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/props"
)

func simEnv(fs fault.Set) *props.Env {
	return &props.Env{Backend: sim.New(sim.Options{}), Faults: fs,
		New: func() (gpu.Backend, error) { return sim.New(sim.Options{}), nil }}
}

// TestHistoryStaleEmptyWgrad: the history property catches a backend that keeps the previous
// case's weight gradients for experts that are empty now, shrinks the pair (the second case,
// then the first), and the shrunk pair's reproduce line names both specs and fails when
// replayed on fresh instances; the correct sim passes the same pairs.
func TestHistoryStaleEmptyWgrad(t *testing.T) {
	ctx := context.Background()
	p, err := props.ByName("history")
	if err != nil {
		t.Fatal(err)
	}
	env := simEnv(fault.Of(fault.StaleEmptyWgrad))
	rep, err := props.Run(ctx, props.RunConfig{Env: env, Properties: []props.Property{p}, Seed: 1, Cases: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) == 0 {
		t.Fatalf("History: stale-empty-wgrad not caught in %d cases", rep.Cases)
	}
	cr := rep.Failures[0]
	sh := cr.Shrunk
	if sh == nil || sh.Outcome == nil || sh.Trial.Prior == nil {
		t.Fatalf("History: case %d: no shrunk pair (%+v)", cr.Index, sh)
	}
	first, second := sh.Trial.Prior.Origin.Spec, sh.Spec
	orig := props.PriorSpec(cr.Spec)
	if first.T != 1 || second.T != 1 || first.H != 1 || second.H != 1 || second.I != 1 {
		t.Errorf("History: pair not shrunk to one token, H = I = 1: %s then %s (from %s then %s)", first, second, orig, cr.Spec)
	}
	line := props.Reproduce(sh.Trial, props.How{Backend: "sim", Faults: env.Faults})
	if !strings.Contains(line, "--spec '"+first.String()+"' --then-spec '"+second.String()+"'") {
		t.Errorf("History: reproduce line %q lacks the pair", line)
	}
	t.Logf("History: caught at case %d, shrunk in %d steps to %s then %s", cr.Index, sh.Steps, first, second)
	// Replay the pair as the reproduce line does: a new process, fresh instances.
	pair, err := props.PairTrial(first, second)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		faults fault.Set
		fail   bool
	}{{"History/faulty", env.Faults, true}, {"History/correct", 0, false}} {
		_, bad, err := props.CheckTrial(ctx, simEnv(tc.faults), []props.Property{p}, pair)
		if err != nil {
			t.Fatal(err)
		}
		if (bad != nil) != tc.fail {
			t.Errorf("%s: failed = %v, want %v (%v)", tc.name, bad != nil, tc.fail, bad)
		}
	}
	// Without a way to open a fresh instance (worker backends) the pair runs on the backend
	// itself and the second run is judged within its enclosure: the stale weight gradients
	// still fail (an always-exact check), the correct sim still passes, and nothing is skipped.
	for _, tc := range []struct {
		name   string
		faults fault.Set
		fail   bool
	}{{"History/no-New-faulty", env.Faults, true}, {"History/no-New-correct", 0, false}} {
		e := &props.Env{Backend: sim.New(sim.Options{}), Faults: tc.faults}
		_, bad, err := props.CheckTrial(ctx, e, []props.Property{p}, pair)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (bad != nil) != tc.fail {
			t.Errorf("%s: failed = %v, want %v (%v)", tc.name, bad != nil, tc.fail, bad)
		}
	}
}
