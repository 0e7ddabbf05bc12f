package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// normalizeRun drops what may differ between runs of one check: the header (it names the
// jobs), the throughput row, the workers' restart line (lanes re-run cases alone) and the
// shrinker's timings.
func normalizeRun(out string) string {
	var keep []string
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "moecheck check:") || strings.HasPrefix(l, "workers: ") || (i > 0 && strings.HasPrefix(lines[i-1], "cases ")) {
			continue
		}
		keep = append(keep, l)
	}
	return regexp.MustCompile(`, [0-9.]+(ms|s|µs)\)`).ReplaceAllString(strings.Join(keep, "\n"), ")")
}

// TestLanesSameRecords: jobs sharing one moecheck-worker as lanes report the same cases, in
// the same order, with the same verdicts and details as one job — with faults that fail some
// cases, and with the crash fault, where every case crashes its shared worker (each is re-run
// alone before it is blamed, so a crash record reads as with one job).
func TestLanesSameRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker")
	}
	bin := buildWorker(t)
	backend := "worker:" + bin + " -backend sim"
	for _, tc := range []struct {
		name  string
		args  []string
		fails bool
	}{
		{"lanes/pass", []string{"--cases", "8", "--seed", "4"}, false},
		{"lanes/faults", []string{"--cases", "8", "--seed", "4", "--faults", "last-tile-dropped", "--keep-going"}, true},
		{"lanes/crash", []string{"--cases", "4", "--seed", "4", "--faults", "crash", "--keep-going", "--max-shrinks", "3"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want string
			for i, jobs := range [][]string{
				{"--jobs", "1", "--lanes-per-worker", "1"}, // a worker per job: the reference
				{"--jobs", "3"}, // one worker of 3 lanes
				{"--jobs", "3", "--lanes-per-worker", "2"}, // workers of 2 lanes and 1
			} {
				args := append(append([]string{"check", "--backend", backend}, tc.args...), jobs...)
				code, out, errs := run(t, nil, args...)
				if wantCode := map[bool]int{false: 0, true: 1}[tc.fails]; code != wantCode {
					t.Fatalf("%v: exit %d, want %d:\n%s\n%s", jobs, code, wantCode, out, errs)
				}
				if strings.Contains(out, "panic") {
					t.Fatalf("%v: a worker panicked:\n%s", jobs, out)
				}
				// the crash fault restarts the worker at every case; lanes of a shared
				// worker re-run each case alone before blaming it: the summary says so
				if tc.name == "lanes/crash" {
					note := regexp.MustCompile(`(?m)^workers: ([0-9]+) process\(es\); ([0-9]+) restart\(s\); ([0-9]+) case\(s\) re-run alone`).FindStringSubmatch(out)
					if note == nil || note[2] == "0" || (i == 1 && note[3] == "0") {
						t.Fatalf("%v: want a workers line with restarts (and lone re-runs with lanes), got %q in\n%s", jobs, note, out)
					}
				}
				got := normalizeRun(out)
				if i == 0 {
					want = got
					continue
				}
				if got != want {
					t.Fatalf("%v: output differs from one job:\n--- one job\n%s\n--- %v\n%s", jobs, want, jobs, got)
				}
			}
		})
	}
}

// TestLanesFlagBounds: --lanes-per-worker outside [0, worker.MaxLanes] is a usage error.
func TestLanesFlagBounds(t *testing.T) {
	for _, tc := range []struct{ name, v string }{{"lanes-flag/negative", "-1"}, {"lanes-flag/huge", "100000"}} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, nil, "check", "--cases", "1", "--lanes-per-worker", tc.v)
			if code != exitUsage || !strings.Contains(errs, "--lanes-per-worker") {
				t.Fatalf("exit %d, want %d naming the flag:\n%s\n%s", code, exitUsage, out, errs)
			}
		})
	}
}

// TestTorchLanesSameRecords: the PyTorch worker's lanes (on the CPU here) report the same
// cases, verdicts, details and exit status as one job in one worker: the ledger's fixed path
// (on the CPU with torch 1.13 some bf16 cases fail matches: a finding of that path there, the
// same with every job count), a historical bug of the ledger (failures, shrunk), and a
// simulated device fault on some cases (the shared worker exits; every case in flight is
// re-run alone before one is blamed).
func TestTorchLanesSameRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Python workers")
	}
	py := torchPython(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"torch-lanes/fixed", []string{"--backend", "torch:ledger:fixed", "--cases", "6", "--seed", "4", "--keep-going", "--max-shrinks", "20"}},
		{"torch-lanes/bug", []string{"--backend", "torch:ledger:clamp-sentinels", "--cases", "6", "--seed", "4", "--keep-going", "--max-shrinks", "20"}},
		{"torch-lanes/fault", []string{"--backend", "torch:callable:moecheck.testing:fixed_faults_some", "--cases", "3", "--seed", "4", "--keep-going", "--max-shrinks", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want string
			wantCode := -1
			for i, jobs := range [][]string{
				{"--jobs", "1", "--lanes-per-worker", "1"}, // one worker, one lane: the reference
				{"--jobs", "3"}, // one worker of 3 lanes (the default 4 per worker)
				{"--jobs", "3", "--lanes-per-worker", "2"}, // workers of 2 lanes and 1
			} {
				args := append(append([]string{"check"}, tc.args...), jobs...)
				code, out, errs := run(t, map[string]string{"MOECHECK_PYTHON": py}, args...)
				if i == 0 && code != 0 && code != 1 || i > 0 && code != wantCode {
					t.Fatalf("%v: exit %d, want %d (one job's, 0 or 1):\n%s\n%s", jobs, code, wantCode, out, errs)
				}
				got := dropStderrTails(normalizeRun(out))
				if i == 0 {
					want, wantCode = got, code
					continue
				}
				if got != want {
					t.Fatalf("%v: output differs from one job:\n--- one job\n%s\n--- %v\n%s", jobs, want, jobs, got)
				}
			}
		})
	}
}

// dropStderrTails drops the "worker stderr (last N lines)" blocks of a check's output: the
// tail of whichever worker process job 0 holds when a failure is printed (writeWorkerNotes),
// a diagnostic that depends on when workers restarted, not part of a case's record (the
// case's own error detail, with the stderr of its worker, is kept).
func dropStderrTails(out string) string {
	var keep []string
	skip := false
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "worker stderr (last ") {
			skip = true
			continue
		}
		if skip && strings.HasPrefix(t, "|") {
			continue
		}
		skip = false
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// buildWorker builds moecheck-worker into a temporary directory and returns its path.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "moecheck-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../moecheck-worker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
