package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWorkerJobsDefault: --jobs defaulted to the core count for every backend, so a CUDA
// worker backend on a 16-core GPU host started 16 workers on one GPU, which checked 8.5
// cases/s against 19.5 with one (H200). Worker backends now default to one job per --devices
// entry (1 without it); an explicit --jobs is kept, and in-process backends keep the cores.
func TestWorkerJobsDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker")
	}
	bin := filepath.Join(t.TempDir(), "moecheck-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../moecheck-worker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"jobs/worker-default-one", []string{"--backend", "worker:" + bin}, "jobs 1,"},
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
