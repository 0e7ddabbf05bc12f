package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/moe"
)

// prober is sim with a scripted GuardProbe (the CUDA lane's probe needs a GPU): it returns
// every (once false) or first-run-only (once true) error given, and counts driver calls.
type prober struct {
	*sim.Backend
	every, first error
	calls        uint64
}

func (p *prober) GuardProbe(_ context.Context, _ *moe.Case, _ gpu.RunOptions, stage, buf string, once bool) error {
	if stage != "gemm1" || buf != "h1" {
		return errors.New("unexpected probe")
	}
	if once {
		return p.first
	}
	return p.every
}

func (p *prober) DriverCalls() uint64 { p.calls += 31; return p.calls }

func crashed(detail string) error { return &gpu.CaseError{Kind: gpu.Crashed, Detail: detail} }

// The self-test's guard-zone check fails unless the probes are reported as crashes naming
// the stage and buffer (end-of-run damage not reproduced: saying so).
func TestGuardCheckSelftest(t *testing.T) {
	named := crashed("out-of-bounds write detected after stage gemm1: guard zone after buffer h1 (4096 bytes) damaged at byte 12 (found at the end of the run; stage named by a re-run with a guard check after every stage)")
	notRepro := crashed("out-of-bounds write detected at the end of the run: guard zone after buffer h1 (4096 bytes) damaged at byte 12 (stage not reproduced: a re-run with a guard check after every stage found no damage)")
	for _, tc := range []struct {
		name        string
		every       error
		first       error
		stageChecks bool
		fails       int
	}{
		{"ok: default mode", named, notRepro, false, 0},
		{"ok: per-stage mode", named, named, true, 0},
		{"fail: no damage reported", nil, notRepro, false, 1},
		{"fail: wrong stage", crashed(strings.Replace(named.Error(), "gemm1", "gemm2", 1)), notRepro, false, 1},
		{"fail: not a crash", errors.New("after stage gemm1: guard zone after buffer h1 damaged at byte 12"), notRepro, false, 1},
		{"fail: not reproduced unsaid", named, crashed("out-of-bounds write detected at the end of the run: guard zone after buffer h1 (1 bytes) damaged at byte 12"), false, 1},
		{"fail: first run only not found", named, nil, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			p := &prober{Backend: sim.New(sim.Options{}), every: tc.every, first: tc.first}
			if n := guardCheck(&out, p, tc.stageChecks); n != tc.fails {
				t.Fatalf("%d failures, want %d:\n%s", n, tc.fails, out.String())
			}
			if !strings.Contains(out.String(), "driver-calls           31 per run") {
				t.Errorf("no driver-call count printed:\n%s", out.String())
			}
		})
	}
	var out bytes.Buffer
	if n := guardCheck(&out, sim.New(sim.Options{}), false); n != 0 || !strings.Contains(out.String(), "skipped") {
		t.Errorf("sim without a probe: %d failures, want 0 and a skip:\n%s", n, out.String())
	}
}
