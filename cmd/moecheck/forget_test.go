package main

import (
	"strings"
	"testing"
)

// TestWorkerJobsSameOutput: through a worker (moecheck-worker -backend sim), a fault that
// carries state from run to run gives the same verdicts with --jobs 1 and --jobs 3, in one
// worker of 3 lanes or a worker per job. Each job's lane keeps its own state, and which cases
// it ran before depends on the scheduling: the client's forget request at the start of every
// trial (internal/worker, forget.go) makes the lane drop it, as the sim does in process
// (TestJobsSameOutput). Without it this check differed between --jobs 1 and 3 in some runs
// (case 86: history with one job, matches with three), depending on the scheduling; the
// deterministic regression test is props' TestTrialForgetsOtherCases/forget/worker.
func TestWorkerJobsSameOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker")
	}
	bin := buildWorker(t)
	backend := "worker:" + bin + " -backend sim"
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"worker-jobs/stale-empty-wgrad", []string{"--cases", "100", "--seed", "1", "--faults", "stale-empty-wgrad", "--keep-going", "--no-shrink"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want string
			for i, jobs := range [][]string{
				{"--jobs", "1"},
				{"--jobs", "3"}, // one worker of 3 lanes
				{"--jobs", "3", "--lanes-per-worker", "1"}, // a worker per job
			} {
				args := append(append([]string{"check", "--backend", backend}, tc.args...), jobs...)
				code, out, errs := run(t, nil, args...)
				if code != 1 {
					t.Fatalf("%v: exit %d, want 1 (the fault is found):\n%s\n%s", jobs, code, out, errs)
				}
				got := normalizeRun(out)
				if i == 0 {
					want = got
					continue
				}
				if got != want {
					t.Fatalf("%v: output differs from --jobs 1:\n--- jobs 1\n%s\n--- %v\n%s", jobs, want, strings.Join(jobs, " "), got)
				}
			}
		})
	}
}
