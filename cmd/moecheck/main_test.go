package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run invokes the command line in-process and returns the exit code and the output.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(context.Background(), args, Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

const leakSpec = "T=4 H=8 I=8 E=3 K=3 world=2 rank=1 global=1 dtype=bf16 act=swiglu layout=standard bias=1 routing=uniform weights=unit data=normal poison=nan seed=5"

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stdout or stderr
	}{
		{"pass/check", []string{"check", "--cases", "8", "--seed", "2"}, 0, "PASS"},
		{"pass/check-spec", []string{"check", "--spec", leakSpec}, 0, "PASS"},
		{"pass/ref", []string{"ref", "-T", "4", "-H", "8", "-I", "8", "-E", "2", "-K", "2", "--mag"}, 0, "max magnitude"},
		{"pass/ref-spec-stages", []string{"ref", "--spec", leakSpec, "--stages"}, 0, "d_act"},
		{"pass/presets", []string{"presets"}, 0, "qwen3-30b-a3b/ep8/rank1/T4/seed1"},
		{"pass/mutants", []string{"mutants", "--faults", "no-mask-up-dgrad,crash", "--cases", "200", "--time", "20s"}, 0, "every fault caught"},
		{"pass/help", []string{"check", "--help"}, 0, "SLURM_ARRAY_TASK_ID"},
		{"fail/check-fault", []string{"check", "--cases", "50", "--faults", "no-mask-up-dgrad"}, 1, "reproduce: moecheck check --backend sim --spec"},
		{"fail/check-spec-fault", []string{"check", "--spec", leakSpec, "--faults", "mask-after-weight"}, 1, "FAIL property matches"},
		{"fail/mutants-missed", []string{"mutants", "--faults", "combine-in-dtype", "--cases", "1", "--time", "5s"}, 1, "not caught"},
		{"usage/unknown-command", []string{"frobnicate"}, 2, "unknown command"},
		{"usage/unknown-flag", []string{"check", "--frob"}, 2, "unknown flag"},
		{"usage/bad-shard", []string{"check", "--shard", "3/2"}, 2, "outside"},
		{"usage/shard-env-missing", []string{"check", "--shard", "env"}, 2, "SLURM_ARRAY_TASK_ID"},
		{"usage/bad-spec", []string{"check", "--spec", "T=x"}, 2, "not an integer"},
		{"usage/bad-fault", []string{"check", "--faults", "nope"}, 2, "unknown fault"},
		{"usage/bad-property", []string{"check", "--properties", "nope"}, 2, "unknown property"},
		{"usage/bad-backend", []string{"check", "--backend", "tpu"}, 2, "want sim"},
		{"usage/triage-nothing", []string{"triage"}, 2, "exactly one"},
		{"usage/ref-args", []string{"ref", "-T", "0"}, 2, "T (tokens) = 0"},
		{"usage/report-args", []string{"report"}, 2, "accepts 1 arg"},
		{"usage/preset", []string{"check", "--preset", "llama/ep8"}, 2, "unknown preset"},
		{"internal/worker-missing", []string{"check", "--backend", "worker:" + filepath.Join(dir, "no-such-worker"), "--cases", "1"}, 3, "starting the worker"},
		{"internal/report-missing", []string{"report", filepath.Join(dir, "none.jsonl")}, 3, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errs)
			}
			if !strings.Contains(out+errs, tc.want) {
				t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", tc.want, out, errs)
			}
		})
	}
}

func TestShardEnv(t *testing.T) {
	for _, tc := range []struct {
		name          string
		flag          string
		env           map[string]string
		shard, shards int
		bad           bool
	}{
		{"plain", "2/5", nil, 2, 5, false},
		{"none", "", nil, 0, 1, false},
		{"slurm", "env", map[string]string{"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "8"}, 3, 8, false},
		{"slurm-count-flag", "env/4", map[string]string{"SLURM_ARRAY_TASK_ID": "3"}, 3, 4, false},
		{"k8s", "env", map[string]string{"JOB_COMPLETION_INDEX": "5", "MOECHECK_SHARDS": "6"}, 5, 6, false},
		{"k8s-no-count", "env", map[string]string{"JOB_COMPLETION_INDEX": "5"}, 0, 0, true},
		{"out-of-range", "env/4", map[string]string{"JOB_COMPLETION_INDEX": "4"}, 0, 0, true},
		{"garbage", "a/b", nil, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, n, err := parseShard(tc.flag, func(k string) string { return tc.env[k] })
			if tc.bad != (err != nil) || (!tc.bad && (s != tc.shard || n != tc.shards)) {
				t.Errorf("parseShard(%q) = %d/%d, %v; want %d/%d (error %v)", tc.flag, s, n, err, tc.shard, tc.shards, tc.bad)
			}
		})
	}
	// the same case stream: shards 0/2 and 1/2 together visit what one run visits
	_, out0, _ := run(t, nil, "check", "--cases", "6", "--shard", "0/2", "--seed", "3")
	_, out1, _ := run(t, map[string]string{"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}, "check", "--cases", "6", "--shard", "env", "--seed", "3")
	for _, out := range []string{out0, out1} {
		if !strings.Contains(out, "\n3 ") {
			t.Errorf("a shard of 6 indices in 2 shards should run 3 cases:\n%s", out)
		}
	}
}

func TestNightlyReport(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "out", "results.jsonl")
	junit := filepath.Join(dir, "out", "junit.xml")
	args := []string{"nightly", "--corpus", "none", "--presets", "qwen3-30b-a3b", "--preset-scale", "64", "--preset-tokens", "2",
		"--cases", "6", "--results", res, "--junit", junit, "--faults", "no-mask-up-dgrad"}
	code, out, errs := run(t, nil, args...)
	if code != 1 || !strings.Contains(out, "FAIL") {
		t.Fatalf("nightly with a fault: exit %d\n%s\n%s", code, out, errs)
	}
	for _, f := range []string{res, junit} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
	// resuming a finished run runs nothing again
	code, out, errs = run(t, nil, append(args, "--resume")...)
	if code != 1 || !strings.Contains(out, "already recorded and skipped") {
		t.Fatalf("resume: exit %d\n%s\n%s", code, out, errs)
	}
	// a second run on the same file without --resume is a usage error
	if code, _, errs = run(t, nil, args...); code != 2 || !strings.Contains(errs, "--resume") {
		t.Fatalf("reuse without --resume: exit %d\n%s", code, errs)
	}
	// a resume with another seed is refused
	if code, _, errs = run(t, nil, append(args, "--resume", "--seed", "9")...); code != 2 || !strings.Contains(errs, "seed") {
		t.Fatalf("resume with another seed: exit %d\n%s", code, errs)
	}
	code, out, errs = run(t, nil, "report", res)
	if code != 0 || !strings.Contains(out, "plot(s)") {
		t.Fatalf("report: exit %d\n%s\n%s", code, out, errs)
	}
	md, err := os.ReadFile(filepath.Join(dir, "out", "report", "report.md"))
	if err != nil || !strings.Contains(string(md), "-heat.png") || !strings.Contains(string(md), "preset/qwen3-30b-a3b") {
		t.Fatalf("report.md: %v\n%s", err, md)
	}
	// without the fault the same preset passes
	code, out, errs = run(t, nil, "nightly", "--corpus", "none", "--presets", "qwen3-30b-a3b", "--preset-scale", "64", "--preset-tokens", "2",
		"--cases", "3", "--results", filepath.Join(dir, "ok", "results.jsonl"))
	if code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("nightly: exit %d\n%s\n%s", code, out, errs)
	}
}
