package triage

import (
	"bytes"
	"context"
	"github.com/moecheck/moecheck/internal/fault"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

// triageSpec has sentinel slots (EP world 2, global routing on rank 1), biases, K = 3 and
// three experts, so most faults of the catalog show on it.
const triageSpec = "T=4 H=8 I=8 E=3 K=3 world=2 rank=1 global=1 dtype=bf16 act=swiglu layout=standard bias=1 routing=uniform weights=unit data=normal poison=nan seed=5"

func TestTriageNamesStageAndFault(t *testing.T) {
	s, err := props.ParseSpec(triageSpec)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Build()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fault fault.Fault
		stage moe.Stage
		tail  bool
	}{
		{fault.NoMaskUpDgrad, moe.StageXs, true},
		{fault.NoMaskDownDgrad, moe.StageH1, true},
		{fault.MaskAfterWeight, moe.StageH2, true},
		{fault.ExclusiveOffsets, moe.StagePlan, false},
		{fault.AccumInDtype, moe.StageH1, false},
		{fault.GateUpSwapped, moe.StageAct, false},
		{fault.EmptyExpertWgrad, moe.StageWgrad2, false},
		{fault.ZeroTokenRow, moe.StageY, false},
		{fault.Crash, StageCrash, false},
	} {
		t.Run("fault="+tc.fault.String(), func(t *testing.T) {
			rep, err := Case(context.Background(), c, Options{Backend: sim.New(sim.Options{}), Faults: fault.Of(tc.fault)})
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.Observed.FirstStage; got != tc.stage {
				t.Errorf("first stage %q, want %q (signature %s)", got, tc.stage, rep.Observed)
			}
			if rep.Observed.Tail != tc.tail {
				t.Errorf("tail %v, want %v (first failure %s)", rep.Observed.Tail, tc.tail, rep.Observed.First)
			}
			if len(rep.Matches) == 0 || rep.Matches[0].Fault.Fault != tc.fault {
				t.Fatalf("best match %v, want %s", rep.Best(), tc.fault)
			}
			if b := rep.Best(); len(b) != 1 {
				t.Errorf("%d faults tie for the best score: %v", len(b), b)
			}
			var out bytes.Buffer
			if err := rep.Write(&out); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "first stage: "+tc.stage.String()) || !strings.Contains(out.String(), tc.fault.String()) {
				t.Errorf("report does not name the stage and the fault:\n%s", out.String())
			}
		})
	}
}

func TestTriagePassingCase(t *testing.T) {
	s, _ := props.ParseSpec(triageSpec)
	rep, err := Spec(context.Background(), s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() || len(rep.Matches) != 0 || rep.Property != "" {
		t.Fatalf("a correct backend was triaged as failing: %s", rep.Observed)
	}
	var out bytes.Buffer
	if err := rep.Write(&out); err != nil || !strings.Contains(out.String(), "nothing to triage") {
		t.Fatalf("write: %v\n%s", err, out.String())
	}
}

func TestTriageSpecShrinks(t *testing.T) {
	s, _ := props.ParseSpec(triageSpec)
	rep, err := Spec(context.Background(), s, Options{Faults: fault.Of(fault.NoMaskUpDgrad)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Property == "" || rep.Shrunk == nil || rep.Shrunk.Steps == 0 {
		t.Fatalf("no shrink: property %q shrunk %+v", rep.Property, rep.Shrunk)
	}
	if rep.Case.T >= 4 || rep.Observed.FirstStage != moe.StageXs || rep.Matches[0].Fault.Fault != fault.NoMaskUpDgrad {
		t.Fatalf("shrunk case %s: first stage %s, best %s", rep.Case.Config, rep.Observed.FirstStage, rep.Matches[0].Fault.Name)
	}
}

func TestFailureStage(t *testing.T) {
	for _, tc := range []struct {
		check  string
		tensor moe.Tensor
		local  bool // Failure.Local
		stage  moe.Stage
		isLoc  bool
	}{
		{oracle.CheckPlan, moe.TensorOffsets, false, moe.StagePlan, true},
		{oracle.CheckStage, moe.TensorDAct, false, moe.StageDAct, true},
		{oracle.CheckBitwise, moe.TensorDAct, false, moe.StageDAct, false},
		{oracle.CheckStage, moe.TensorDB2, true, moe.StageWgrad2, true},
		{oracle.CheckBound, moe.TensorDB2, false, moe.StageWgrad2, false},
		{oracle.CheckSentinelDRW, moe.TensorDRW, false, moe.StageDRW, false},
		{oracle.CheckPlan, moe.TensorPerm, false, moe.StagePlan, true},
		{oracle.CheckCaseError, moe.TensorCase, false, StageCrash, true},
	} {
		f := oracle.Failure{Check: tc.check, Tensor: tc.tensor, Local: tc.local}
		st, l := f.Stage()
		if st != tc.stage || l != tc.isLoc {
			t.Errorf("stage of %s %s = %s %v, want %s %v", tc.check, f.TensorName(), st, l, tc.stage, tc.isLoc)
		}
	}
	// local failures win over earlier end-to-end ones
	st, _, local, _ := FirstStage([]oracle.Failure{{Check: oracle.CheckBound, Tensor: moe.TensorY}, {Check: oracle.CheckStage, Tensor: moe.TensorDAct}})
	if st != moe.StageDAct || !local {
		t.Errorf("FirstStage = %s (local %v), want d_act", st, local)
	}
}
