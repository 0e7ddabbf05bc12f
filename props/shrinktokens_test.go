package props_test

import (
	"context"
	"github.com/moecheck/moecheck/internal/fault"
	"testing"

	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// ShrinkTokens cuts a failing case without a spec down to the tokens the failure needs, and
// refuses a case on which the property does not fail.
func TestShrinkTokens(t *testing.T) {
	sp, err := props.ParseSpec("T=24 H=8 I=8 E=4 K=2 world=4 rank=1 global=1 dtype=bf16 act=swiglu layout=standard bias=1 routing=uniform weights=unit data=normal poison=nan seed=3")
	if err != nil {
		t.Fatal(err)
	}
	c, err := sp.Build()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		faults fault.Set
		maxT   int // the shrunk case has at most this many tokens; 0: shrinking must refuse
	}{
		{"shrink-tokens/leak2", fault.Of(fault.NoMaskUpDgrad), 1},
		{"shrink-tokens/rank-offset", fault.Of(fault.EPNoRankOffset), 2},
		{"shrink-tokens/correct-path", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := &props.Env{Backend: sim.New(sim.Options{}), Faults: tc.faults}
			r, err := props.ShrinkTokens(context.Background(), env, "matches", props.Trial{Case: c, Poison: sp.PoisonPolicy()}, 0)
			if tc.maxT == 0 {
				if err == nil {
					t.Fatalf("shrank a passing case to T=%d", r.Case.T)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Case.T > tc.maxT || r.Outcome == nil || r.Outcome.Pass {
				t.Fatalf("shrunk to T=%d (want ≤ %d) in %d steps, %d tries; outcome %+v", r.Case.T, tc.maxT, r.Steps, r.Tries, r.Outcome)
			}
			if err := r.Case.Validate(moe.Limits{}); err != nil {
				t.Fatalf("shrunk case invalid: %v", err)
			}
		})
	}
}
