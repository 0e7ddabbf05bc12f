package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/internal/nightly"
)

// TestHostileInput: each of these was accepted, replaced silently or swallowed; each is now
// a usage error (exit 2) naming the problem.
func TestHostileInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"usage/empty-spec", []string{"check", "--spec", ""}, "--spec is empty"},
		{"usage/blank-spec", []string{"ref", "--spec", "  "}, "--spec is empty"},
		{"usage/empty-preset", []string{"check", "--preset", ""}, "--preset is empty"},
		{"usage/repeated-key", []string{"check", "--spec", "T=1 H=2 T=3"}, "spec key T given twice"},
		{"usage/cases-0", []string{"check", "--cases", "0"}, "--cases 0"},
		{"usage/nightly-cases-0", []string{"nightly", "--cases", "0", "--presets", "none", "--corpus", "none", "--results", filepath.Join(t.TempDir(), "r")}, "--cases 0"},
		{"usage/wide-pct", []string{"check", "--wide-pct", "1000"}, "--wide-pct 1000"},
		{"usage/nightly-wide-pct", []string{"nightly", "--wide-pct", "-1", "--presets", "none", "--corpus", "none", "--results", filepath.Join(t.TempDir(), "r")}, "--wide-pct -1"},
		{"usage/case-timeout", []string{"check", "--case-timeout", "-1s", "--cases", "1"}, "--case-timeout -1s"},
		{"usage/start-timeout", []string{"check", "--worker-start-timeout", "0s", "--cases", "1"}, "--worker-start-timeout 0s"},
		{"usage/start-overflow", []string{"check", "--start", "9223372036854775806", "--cases", "5"}, "case indices past"},
		{"usage/preset-ep0", []string{"check", "--preset", "qwen3-30b-a3b/ep0"}, `"ep0"`},
		{"usage/preset-T0", []string{"check", "--preset", "qwen3-30b-a3b/T0"}, `"T0"`},
		{"usage/preset-scale0", []string{"check", "--preset", "qwen3-30b-a3b/scale0"}, `"scale0"`},
		{"usage/preset-tokens", []string{"nightly", "--presets", "qwen3-30b-a3b", "--preset-tokens", "1000000000", "--corpus", "none", "--results", filepath.Join(t.TempDir(), "r")}, "--preset-tokens 1000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, nil, tc.args...)
			if code != exitUsage || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s\n%s", code, tc.want, out, errs)
			}
		})
	}
}

// TestNightlyKeepsForeignFile: nightly cut "notes" (no newline) to nothing and exited 0.
func TestNightlyKeepsForeignFile(t *testing.T) {
	for _, resume := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "f")
		os.WriteFile(path, []byte("notes"), 0o644)
		args := []string{"nightly", "--cases", "1", "--presets", "none", "--corpus", "none", "--results", path}
		if resume {
			args = append(args, "--resume")
		}
		code, out, errs := run(t, nil, args...)
		if got, _ := os.ReadFile(path); code != exitUsage || !bytes.Equal(got, []byte("notes")) {
			t.Fatalf("resume=%v: exit %d, file %q: want 2 and the file untouched\n%s\n%s", resume, code, got, out, errs)
		}
	}
}

// TestReplayDirGoesOn: replay DIR stopped at the first file that does not parse.
func TestReplayDirGoesOn(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a-broken.case"), []byte("moecheck-case v1\nshape: T=x\n"), 0o644)
	good, err := os.ReadFile("../../corpus/seeds/single-token.case")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "b-good.case"), good, 0o644)
	code, out, errs := run(t, nil, "replay", "--properties", "matches", dir)
	if code != exitFailures || !strings.Contains(out, "FAIL "+filepath.Join(dir, "a-broken.case")) || !strings.Contains(out, "b-good (") {
		t.Fatalf("exit %d, want 1 with the broken file failed and the good one run:\n%s\n%s", code, out, errs)
	}
}

// TestNightlyResumeFlags: a bare resume forgot the run's flags, and one with another
// --backend, --dtype, --properties or --wide-pct was accepted silently.
func TestNightlyResumeFlags(t *testing.T) {
	results := filepath.Join(t.TempDir(), "r.jsonl")
	code, out, errs := run(t, nil, "nightly", "--cases", "2", "--presets", "none", "--corpus", "none", "--dtype", "fp16",
		"--wide-pct", "5", "--properties", "matches", "--seed", "4", "--results", results)
	if code != 0 {
		t.Fatalf("first run: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = run(t, nil, "nightly", "--resume", "--results", results)
	if code != 0 {
		t.Fatalf("bare resume: exit %d\n%s\n%s", code, out, errs)
	}
	var starts []*nightly.RunInfo
	for _, r := range readRecords(t, results) {
		if r.Type == nightly.TypeStart {
			starts = append(starts, r.Run)
		}
	}
	if len(starts) != 2 || starts[1].Seed != 4 || strings.Join(starts[1].Properties, ",") != "matches" ||
		starts[1].Flags["wide-pct"] != "5" || starts[1].Flags["presets"] != "none" || starts[1].Cases != 2 {
		t.Fatalf("start records %+v %+v: the bare resume did not restore the run's flags", starts[0], starts[len(starts)-1])
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"resume/dtype", []string{"--dtype", "bf16"}, "--dtype bf16"},
		{"resume/wide-pct", []string{"--wide-pct", "7"}, "--wide-pct 7 (recorded: 5)"},
		{"resume/properties", []string{"--properties", "deterministic"}, "--properties deterministic (recorded: matches)"},
		{"resume/backend", []string{"--backend", "worker:moecheck-worker"}, "(recorded: sim)"},
		{"resume/presets", []string{"--presets", "all"}, "--presets all (recorded: none)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, nil, append([]string{"nightly", "--resume", "--results", results}, tc.args...)...)
			if code != exitUsage || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, want 2 naming %q:\n%s\n%s", code, tc.want, out, errs)
			}
		})
	}
}

// TestNightlyResumeTimeBudget: the walk-through's bare resume of a --time run (no --cases)
// failed with "--cases 0: want at least 1": restoring the recorded default marked the flag
// as given.
func TestNightlyResumeTimeBudget(t *testing.T) {
	results := filepath.Join(t.TempDir(), "r.jsonl")
	code, out, errs := run(t, nil, "nightly", "--time", "1s", "--presets", "none", "--corpus", "none",
		"--properties", "matches", "--results", results)
	if code != 0 {
		t.Fatalf("first run: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = run(t, nil, "nightly", "--resume", "--results", results)
	if code != 0 {
		t.Fatalf("bare resume of a --time run: exit %d, want 0\n%s\n%s", code, out, errs)
	}
}

// TestNightlyCorpusMissing: a --corpus path that does not exist (a typo) was skipped with a
// warning and the run passed with no corpus case.
func TestNightlyCorpusMissing(t *testing.T) {
	results := filepath.Join(t.TempDir(), "r.jsonl")
	code, out, errs := run(t, nil, "nightly", "--cases", "1", "--presets", "none", "--corpus", "no/such/dir", "--results", results)
	if code != exitUsage || !strings.Contains(errs, "--corpus no/such/dir") {
		t.Fatalf("exit %d, want 2 naming the missing corpus path:\n%s\n%s", code, out, errs)
	}
}

// TestNegativeMaxShrinks: --max-shrinks -5 was accepted silently.
func TestNegativeMaxShrinks(t *testing.T) {
	results := filepath.Join(t.TempDir(), "r.jsonl")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"check", []string{"check", "--cases", "1", "--max-shrinks", "-5"}},
		{"nightly", []string{"nightly", "--cases", "1", "--presets", "none", "--corpus", "none", "--results", results, "--max-shrinks", "-5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, nil, tc.args...)
			if code != exitUsage || !strings.Contains(errs, "--max-shrinks -5") {
				t.Fatalf("exit %d, want 2 naming --max-shrinks -5:\n%s\n%s", code, out, errs)
			}
		})
	}
}

// TestFlagsOutOfRange: values accepted silently or replaced: report --max-plots -1 (none)
// and 0 (became 50), ref --ep-world 0 (became 1), triage --top 0 or -1 (became 3).
func TestFlagsOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"report/max-plots-negative", []string{"report", "--max-plots", "-1", "no-such.jsonl"}, "--max-plots -1"},
		{"ref/ep-world-0", []string{"ref", "--ep-world", "0"}, "--ep-world 0"},
		{"triage/top-0", []string{"triage", "--top", "0", "--spec", "T=1 H=1 I=1 E=1 K=1 seed=1", "--no-save"}, "--top 0"},
		{"triage/top-negative", []string{"triage", "--top", "-1", "--spec", "T=1 H=1 I=1 E=1 K=1 seed=1", "--no-save"}, "--top -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, nil, tc.args...)
			if code != exitUsage || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, want 2 naming %q:\n%s\n%s", code, tc.want, out, errs)
			}
		})
	}
}

// TestReportMaxPlotsZero: report --max-plots 0 drew up to 50 plots (the library's default).
func TestReportMaxPlotsZero(t *testing.T) {
	results := filepath.Join(t.TempDir(), "r.jsonl")
	code, out, errs := run(t, nil, "nightly", "--cases", "2", "--presets", "none", "--corpus", "none",
		"--properties", "matches", "--faults", "mask-after-weight", "--results", results)
	if code != exitFailures {
		t.Fatalf("nightly: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	code, out, errs = run(t, nil, "report", "--max-plots", "0", results)
	if code != 0 || !strings.Contains(out, " 0 plot(s)") {
		t.Fatalf("exit %d, want 0 with no plots:\n%s\n%s", code, out, errs)
	}
}

// TestRefInterrupted: ref ignored SIGINT and SIGTERM (ran on and exited 0).
func TestRefInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := Execute(ctx, []string{"ref"}, Env{Stdout: &out, Stderr: &errb})
	if code != exitInternal || !strings.Contains(errb.String(), "interrupted") {
		t.Fatalf("exit %d, want 3 (interrupted):\n%s\n%s", code, out.String(), errb.String())
	}
}
