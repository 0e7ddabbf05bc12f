package props_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/props"
)

// TestTrialForgetsOtherCases: a trial's outcome does not depend on what the backend instance
// ran before it. With fault stale-empty-wgrad the sim keeps the previous run's weight
// gradients for experts that are empty now; a trial whose empty expert another case of the
// same shape filled used to fail matches after that case and pass it on a fresh instance, so
// verdicts depended on --jobs (CI saw it: TestJobsSameOutput/jobs/stateful-stale-empty-wgrad).
// Every trial now starts with the backend's cross-case state forgotten (sim.Backend.Forget);
// the trial's own runs still share theirs, and history still catches the fault.
func TestTrialForgetsOtherCases(t *testing.T) {
	full, err := props.ParseSpec("T=16 H=8 I=8 E=3 K=3 world=1 rank=0 global=0 dtype=bf16 act=swiglu layout=standard bias=0 routing=uniform weights=unit data=normal poison=nan seed=5")
	if err != nil {
		t.Fatal(err)
	}
	empty, err := props.ParseSpec("T=2 H=8 I=8 E=3 K=1 world=1 rank=0 global=0 dtype=bf16 act=swiglu layout=standard bias=0 routing=all-one weights=unit data=normal poison=nan seed=6")
	if err != nil {
		t.Fatal(err)
	}
	before, err := props.SpecTrial(full)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := props.SpecTrial(empty)
	if err != nil {
		t.Fatal(err)
	}
	ps := []props.Property{}
	for _, name := range []string{"matches", "poison-invariance", "deterministic"} {
		p, err := props.ByName(name)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	fresh := simEnv(fault.Of(fault.StaleEmptyWgrad))
	alone, _, err := props.CheckTrial(context.Background(), fresh, ps, tr)
	if err != nil {
		t.Fatal(err)
	}
	shared := simEnv(fault.Of(fault.StaleEmptyWgrad))
	if _, _, err := props.CheckTrial(context.Background(), shared, ps, before); err != nil {
		t.Fatal(err)
	}
	after, _, err := props.CheckTrial(context.Background(), shared, ps, tr)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(outs(alone)) != fmt.Sprint(outs(after)) {
		t.Errorf("the trial after another case:\n%v\non a fresh instance:\n%v", outs(after), outs(alone))
	}
	// The trial's own runs still carry state: history catches the fault.
	h, err := props.ByName("history")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := props.Run(context.Background(), props.RunConfig{Env: simEnv(fault.Of(fault.StaleEmptyWgrad)), Properties: []props.Property{h}, Seed: 1, Cases: 100, MaxShrinks: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) == 0 {
		t.Error("history no longer catches stale-empty-wgrad")
	}
}

// outs is each outcome's property, verdict and failures.
func outs(os []*props.Outcome) []string {
	var s []string
	for _, o := range os {
		s = append(s, fmt.Sprintf("%s pass=%v %v", o.Property, o.Pass, o.Failures))
	}
	return s
}
