package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moecheck/moecheck/internal/nightly"
)

// buildCLI builds this command into a temporary directory, for tests that need a real
// process (signals, kill -9, two processes on one file).
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "moecheck")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// readRecords reads a results file (a cut-short last line is allowed: a kill -9 leaves one).
func readRecords(t *testing.T, path string) []nightly.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, _, _, err := nightly.ReadResults(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs
}

// waitCases waits until path holds at least n case records.
func waitCases(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), `"type":"case"`) >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: fewer than %d case records after 15 s", path, n)
}

// TestNightlyProcesses: two writers on one results file (the second is refused and the file
// stays valid), and a kill -9 / bare --resume loop (5 kills) that leaves unique, contiguous
// random case indices.
func TestNightlyProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the CLI")
	}
	bin := buildCLI(t)
	dir := t.TempDir()
	results := filepath.Join(dir, "r.jsonl")
	base := []string{"nightly", "--cases", "1000000", "--presets", "none", "--corpus", "none", "--properties", "matches",
		"--dtype", "fp32", "--wide-pct", "0", "--no-artifacts", "--results", results}
	start := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	t.Run("proc/second-writer", func(t *testing.T) {
		a := start(base...)
		waitCases(t, results, 2)
		for _, extra := range [][]string{nil, {"--resume"}} {
			out, err := exec.Command(bin, append(append([]string{}, base...), extra...)...).CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != exitUsage || !strings.Contains(string(out), "in use by another moecheck run") {
				t.Errorf("second writer %v: %v, want exit 2 naming the other run:\n%s", extra, err, out)
			}
		}
		a.Process.Signal(os.Interrupt)
		a.Wait()
		recs := readRecords(t, results)
		if len(recs) < 3 || recs[0].Type != nightly.TypeStart {
			t.Fatalf("%d records after the first writer ended", len(recs))
		}
	})

	t.Run("proc/kill-9-resume", func(t *testing.T) {
		for k := 0; k < 5; k++ {
			n := len(nightly.Cases(readRecords(t, results)))
			// a bare resume: the run's flags come from the file
			p := start("nightly", "--resume", "--results", results)
			waitCases(t, results, n+3+k)
			time.Sleep(time.Duration(k*7) * time.Millisecond)
			p.Process.Signal(syscall.SIGKILL)
			p.Wait()
		}
		p := start("nightly", "--resume", "--results", results)
		waitCases(t, results, len(nightly.Cases(readRecords(t, results)))+1)
		p.Process.Signal(os.Interrupt)
		p.Wait()
		recs := readRecords(t, results)
		seen := map[int]int{}
		hi, starts := -1, 0
		for _, r := range recs {
			switch r.Type {
			case nightly.TypeStart:
				starts++
				if r.Run.Flags["cases"] != "1000000" || r.Run.Flags["dtype"] != "[fp32]" && r.Run.Flags["dtype"] != "fp32" {
					t.Fatalf("start record %d flags %v: the bare resume lost the run's flags", starts, r.Run.Flags)
				}
			case nightly.TypeCase:
				seen[*r.Index]++
				hi = max(hi, *r.Index)
			}
		}
		for i := 0; i <= hi; i++ {
			if seen[i] != 1 {
				b, _ := json.Marshal(seen)
				t.Fatalf("case index %d recorded %d times (indices %s)", i, seen[i], b)
			}
		}
		if starts < 7 || hi < 20 {
			t.Fatalf("%d start records, highest index %d: the loop did not run", starts, hi)
		}
	})
}
