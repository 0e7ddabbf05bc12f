package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestOneCaseOneJob: check --spec/--preset checks one case, so it runs one job whatever
// --jobs (or a backend's default) says. Before, a preset on the 2-core machine ran its sim
// on cores/jobs = 1 core (43 s instead of 31 s at T = 4,096) and a torch:… or cuda worker
// started lanes it never used.
func TestOneCaseOneJob(t *testing.T) {
	a := &app{ctx: context.Background()}
	for _, tc := range []struct {
		name    string
		backend string
		jobs    string // --jobs given ("" = the default)
		one     bool
		want    int
	}{
		{"onecase/sim-default", "sim", "", true, 1},
		{"onecase/sim-explicit", "sim", "4", true, 1},
		{"onecase/torch-default", "torch:ledger:fixed", "", true, 1},
		{"onecase/cuda-explicit", "cuda", "16", true, 1},
		{"random/sim-explicit", "sim", "4", false, 4},
		{"random/torch-default", "torch:ledger:fixed", "", false, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			f := &backendFlags{backend: tc.backend}
			if tc.one {
				f.maxCases = 1
			}
			f.registerJobs(fs)
			if tc.jobs != "" {
				if err := fs.Parse([]string{"--jobs", tc.jobs}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.pool(a); err != nil {
				t.Fatal(err)
			}
			if f.jobs != tc.want {
				t.Errorf("jobs = %d, want %d", f.jobs, tc.want)
			}
		})
	}
}

// TestReplayJobsAtMostCases: replay of one record with --jobs 4 started a worker with 4 lanes
// (and gave an in-process sim cores/4); it now runs min(--jobs, cases) jobs. The worker here
// is moecheck-worker behind a wrapper that records MOECHECK_WORKER_LANES.
func TestReplayJobsAtMostCases(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker")
	}
	dir := t.TempDir()
	real := filepath.Join(dir, "real-worker")
	if out, err := exec.Command("go", "build", "-o", real, "../moecheck-worker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	lanesFile := filepath.Join(dir, "lanes")
	wrapDir := filepath.Join(dir, "bin")
	os.Mkdir(wrapDir, 0o755)
	wrap := filepath.Join(wrapDir, "moecheck-worker") // the name marks a lanes-serving worker
	script := "#!/bin/sh\necho \"${MOECHECK_WORKER_LANES:-1}\" >> " + lanesFile + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(wrap, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"replay-jobs/one-record", []string{"../../corpus/seeds/single-token.case"}, "1"},
		{"replay-jobs/two-records", []string{"../../corpus/seeds/single-token.case", "../../corpus/seeds/single-token.case"}, "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(lanesFile)
			args := append([]string{"replay", "--backend", "worker:" + wrap, "--jobs", "4", "--properties", "matches"}, tc.args...)
			code, out, errs := run(t, nil, args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errs)
			}
			got, err := os.ReadFile(lanesFile)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(got)) != tc.want {
				t.Errorf("worker started with lanes %q, want %q", strings.TrimSpace(string(got)), tc.want)
			}
		})
	}
}
