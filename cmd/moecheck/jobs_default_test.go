package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/internal/backends"
)

// TestWorkerJobsDefault: --jobs defaulted to the core count for every backend, so a CUDA
// worker backend on a 16-core GPU host started 16 workers on one GPU, which checked 8.5
// cases/s against 19.5 with one (H200). Worker backends without lanes default to one job per
// --devices entry (1 without it); moecheck-worker backends, whose jobs share one worker per
// device as lanes (one CUDA context), keep the cores; an explicit --jobs is kept.
func TestWorkerJobsDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker")
	}
	bin := buildWorker(t)
	other := filepath.Join(t.TempDir(), "other-worker") // not known to serve lanes
	if out, err := exec.Command("cp", bin, other).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	cores := fmt.Sprintf("jobs %d,", runtime.GOMAXPROCS(0))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"jobs/lanes-default-cores", []string{"--backend", "worker:" + bin}, cores},
		{"jobs/no-lanes-default-one", []string{"--backend", "worker:" + bin, "--lanes-per-worker", "1"}, "jobs 1,"},
		{"jobs/other-worker-default-one", []string{"--backend", "worker:" + other}, "jobs 1,"},
		{"jobs/worker-explicit", []string{"--backend", "worker:" + bin, "--jobs", "2"}, "jobs 2,"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, nil, append([]string{"check", "--cases", "2", "--seed", "4"}, tc.args...)...)
			if code != 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want 0 and a header with %q:\n%s\n%s", code, tc.want, out, errs)
			}
		})
	}
}

// TestTorchJobsDefault: torch:… backends default to backends.TorchJobs jobs per device in
// workers of backends.TorchLanes lanes; with --lanes-per-worker 1 (a process per job) to one
// job per device, as other worker backends; an explicit --jobs is kept.
func TestTorchJobsDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Python workers")
	}
	py := torchPython(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"torch-jobs/default", nil, fmt.Sprintf("jobs %d,", backends.TorchJobs(runtime.GOMAXPROCS(0), 0))},
		{"torch-jobs/no-lanes-default-one", []string{"--lanes-per-worker", "1"}, "jobs 1,"},
		{"torch-jobs/explicit", []string{"--jobs", "3"}, "jobs 3,"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"check", "--cases", "1", "--seed", "4", "--dtype", "fp32", "--backend", "torch:ledger:fixed"}, tc.args...)
			code, out, errs := run(t, map[string]string{"MOECHECK_PYTHON": py}, args...)
			if code > 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want 0 or 1 and a header with %q:\n%s\n%s", code, tc.want, out, errs)
			}
		})
	}
}
