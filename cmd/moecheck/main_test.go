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
		{"pass/replay-walks-directories", []string{"replay", "../../corpus"}, 0, "PASS corpus/seeds/single-token"},
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
		{"usage/spec-rank-beyond-world", []string{"check", "--spec", "T=1 world=2 rank=5"}, 2, "rank=5: must be below world=2"},
		{"usage/spec-global-without-ep", []string{"check", "--spec", "world=1 global=1"}, 2, "global=1"},
		{"usage/spec-zero-tokens", []string{"check", "--spec", "T=0"}, 2, "T=0: must be at least 1"},
		{"usage/bad-fault", []string{"check", "--faults", "nope"}, 2, "unknown fault"},
		{"usage/jobs-zero", []string{"check", "--jobs", "0"}, 2, "--jobs 0: want between 1 and 1024"},
		{"usage/jobs-absurd", []string{"replay", "--jobs", "100000", "../../corpus"}, 2, "--jobs 100000"},
		{"usage/devices-sim", []string{"check", "--devices", "0,1"}, 2, "devices need a worker backend"},
		{"usage/devices-bad", []string{"replay", "--backend", "cuda", "--devices", "0,x", "../../corpus/seeds"}, 2, `"x" is not a CUDA device ordinal`},
		{"usage/devices-twice", []string{"mutants", "--backend", "cuda", "--devices", "1,1"}, 2, "device 1 named twice"},
		{"usage/bad-property", []string{"check", "--properties", "nope"}, 2, "unknown property"},
		{"usage/bad-backend", []string{"check", "--backend", "tpu"}, 2, "want sim"},
		{"usage/triage-nothing", []string{"triage"}, 2, "exactly one"},
		{"usage/ref-args", []string{"ref", "-T", "0"}, 2, "T (tokens) = 0"},
		{"usage/report-args", []string{"report"}, 2, "requires at least 1 arg"},
		{"usage/preset", []string{"check", "--preset", "llama/ep8"}, 2, "unknown preset"},
		{"worker/missing", []string{"check", "--backend", "worker:" + filepath.Join(dir, "no-such-worker"), "--cases", "1"}, 3, "starting the worker"},
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

func TestCorpusCommands(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "regressions")
	// triage a failing spec: shrinks, names the stage and the fault, saves the case
	code, out, errs := run(t, nil, "triage", "--spec", leakSpec, "--faults", "no-mask-up-dgrad", "--dir", reg)
	if code != 1 || !strings.Contains(out, "first stage: xs") || !strings.Contains(out, "1.00   no-mask-up-dgrad") || !strings.Contains(out, "saved: ") {
		t.Fatalf("triage: exit %d\n%s\n%s", code, out, errs)
	}
	files, _ := filepath.Glob(filepath.Join(reg, "*.case"))
	if len(files) != 1 {
		t.Fatalf("saved %v", files)
	}
	// triage of the saved file finds the same, and does not save it again
	code, out, _ = run(t, nil, "triage", files[0], "--faults", "no-mask-up-dgrad", "--dir", reg)
	if code != 1 || !strings.Contains(out, "first stage: xs") || !strings.Contains(out, "already in the corpus") {
		t.Fatalf("triage file: exit %d\n%s", code, out)
	}
	// a passing case: nothing to triage
	if code, out, _ = run(t, nil, "triage", "--spec", leakSpec, "--no-save"); code != 0 || !strings.Contains(out, "nothing to triage") {
		t.Fatalf("triage passing: exit %d\n%s", code, out)
	}
	if code, _, errs = run(t, nil, "triage", "--spec", leakSpec, "--no-stages"); code != 2 {
		t.Fatalf("triage --no-stages: exit %d %s", code, errs)
	}
	// save a spec, twice (the second is a no-op), and a different case under the same name
	code, out, errs = run(t, nil, "save", "--spec", leakSpec, "--dir", reg, "--name", "leak", "--note", "transformers #48205")
	if code != 0 || !strings.Contains(out, "saved ") {
		t.Fatalf("save: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, _ = run(t, nil, "save", "--spec", leakSpec, "--dir", reg, "--name", "leak"); code != 0 || !strings.Contains(out, "already saved") {
		t.Fatalf("save again: exit %d\n%s", code, out)
	}
	if code, _, errs = run(t, nil, "save", "--spec", strings.Replace(leakSpec, "seed=5", "seed=6", 1), "--dir", reg, "--name", "leak"); code != 2 || !strings.Contains(errs, "another case") {
		t.Fatalf("save over another case: exit %d\n%s", code, errs)
	}
	// a fuzz crasher file
	fuzz := filepath.Join(dir, "3f9a")
	os.WriteFile(fuzz, []byte("go test fuzz v1\n[]byte(\"\\x03\\x07\\x05\\x02\\x02\\x10\\x01\\x01\\x00\\x00\\x01\")\n"), 0o644)
	if code, out, errs = run(t, nil, "save", "--fuzz-file", fuzz, "--dir", reg); code != 0 || !strings.Contains(out, "fuzz-3f9a.case") {
		t.Fatalf("save fuzz: exit %d\n%s\n%s", code, out, errs)
	}
	os.WriteFile(fuzz, []byte("go test fuzz v1\nint(3)\n"), 0o644)
	if code, _, errs = run(t, nil, "save", "--fuzz-file", fuzz, "--dir", reg); code != 2 || !strings.Contains(errs, "not a []byte") {
		t.Fatalf("save bad fuzz file: exit %d\n%s", code, errs)
	}
	// replay: the saved cases pass on a correct backend and the leak fails with the fault
	if code, out, errs = run(t, nil, "replay", reg); code != 0 || !strings.Contains(out, "3 case(s), 0 failing") {
		t.Fatalf("replay: exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, _ = run(t, nil, "replay", reg, "--faults", "no-mask-up-dgrad"); code != 1 || !strings.Contains(out, "FAIL regressions/leak") {
		t.Fatalf("replay with the fault: exit %d\n%s", code, out)
	}
	if code, _, _ = run(t, nil, "replay", filepath.Join(dir, "missing")); code != 2 {
		t.Fatalf("replay missing: exit %d", code)
	}
	bad := filepath.Join(dir, "bad.case")
	os.WriteFile(bad, []byte("moecheck-case v1\nshape: T=0\n"), 0o644)
	if code, _, errs = run(t, nil, "replay", bad); code != 2 || !strings.Contains(errs, "bad.case") {
		t.Fatalf("replay malformed: exit %d\n%s", code, errs)
	}
	// nightly replays the corpus directory
	code, out, errs = run(t, nil, "nightly", "--corpus", reg, "--presets", "none", "--results", filepath.Join(dir, "n", "r.jsonl"), "--faults", "no-mask-up-dgrad")
	if code != 1 || !strings.Contains(out, "FAIL  corpus/regressions/leak") {
		t.Fatalf("nightly corpus: exit %d\n%s\n%s", code, out, errs)
	}
}

// Cases whose CPU check would not fit 3/4 of the machine's memory are refused before anything
// of their size is allocated, naming the limit (here a machine of 1 GiB: 8,388,608 values).
func TestMemoryLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.case")
	os.WriteFile(big, []byte("moecheck-case v1\nshape: T=4 H=4096 I=4096 E=64 K=1\ndtype: bf16\nact: swiglu\nlayout: standard\nbias: no\nrouting: local\ntok 0: 0:1\ntok 1: 0:1\ntok 2: 0:1\ntok 3: 0:1\ndata: seed=1 mode=normal\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"memory/spec", []string{"check", "--spec", "T=4 H=4096 I=4096 E=64 K=1"}},
		{"memory/preset", []string{"check", "--preset", "mixtral-8x7b/ep8/rank1/T4/seed1"}},
		{"memory/replay", []string{"replay", big}},
		{"memory/ref", []string{"ref", "-T", "4", "-H", "4096", "-I", "4096", "-E", "64", "-K", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Execute(context.Background(), tc.args, Env{Stdout: &out, Stderr: &errb, Memory: 1 << 30})
			if code != 2 || !strings.Contains(errb.String(), "over the limit of 8388608 values") {
				t.Fatalf("exit %d, want 2 naming the limit:\n%s\n%s", code, out.String(), errb.String())
			}
		})
	}
}

// A sampled check through a worker needs about half the memory a value of the full check does
// (presets.BytesPerElementSampledWorker): its preset limit is derived from that figure, and
// only for it. 1 GiB of memory: 8,388,608 values at 96 bytes, 16,777,216 at 48; the Mixtral
// EP-8 rank at T=4, H and I divided by 4, holds about 11 million.
func TestSampledWorkerCaseLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		refused bool
	}{
		{"full/worker", []string{"check", "--backend", "worker:/nonexistent/moecheck-worker", "--preset", "mixtral-8x7b/ep8/rank1/T4/seed1/scale4"}, true},
		{"sampled/sim", []string{"check", "--sample", "0.1", "--preset", "mixtral-8x7b/ep8/rank1/T4/seed1/scale4"}, true},
		{"sampled/worker", []string{"check", "--sample", "0.1", "--backend", "worker:/nonexistent/moecheck-worker", "--preset", "mixtral-8x7b/ep8/rank1/T4/seed1/scale4"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Execute(context.Background(), tc.args, Env{Stdout: &out, Stderr: &errb, Memory: 1 << 30})
			refused := code == 2 && strings.Contains(errb.String(), "over the limit of")
			if refused != tc.refused {
				t.Fatalf("exit %d, refused by the case limit %v, want %v:\n%s\n%s", code, refused, tc.refused, out.String(), errb.String())
			}
			if !tc.refused && (code == 0 || !strings.Contains(out.String()+errb.String(), "nonexistent")) {
				t.Fatalf("exit %d, want the worker's start to fail (past the limit):\n%s\n%s", code, out.String(), errb.String())
			}
		})
	}
}

// A corpus file that does not parse is a recorded failure of the nightly, not the end of it.
func TestNightlyUnreadableCorpusFile(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "reg")
	os.MkdirAll(reg, 0o755)
	os.WriteFile(filepath.Join(reg, "broken.case"), []byte("moecheck-case v1\nshape: T=x\n"), 0o644)
	code, out, errs := run(t, nil, "nightly", "--corpus", "../../corpus/seeds/single-token.case,"+reg, "--presets", "none",
		"--results", filepath.Join(dir, "r.jsonl"))
	if code != 1 || !strings.Contains(out, "FAIL  corpus/broken") || !strings.Contains(out, "pass  corpus/single-token") {
		t.Fatalf("exit %d, want 1 with the broken file failed and the other case run:\n%s\n%s", code, out, errs)
	}
}

// TestJobsSameOutput checks that check and replay print the same verdicts whatever --jobs is
// (the timing lines aside).
func TestJobsSameOutput(t *testing.T) {
	strip := func(s string) string {
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "moecheck check:") || strings.Contains(l, "cases/s") || strings.HasPrefix(l, "PASS ") {
				continue // the header names --jobs; timings vary
			}
			if f := strings.Fields(l); len(f) == 4 && strings.HasSuffix(f[2], "s") {
				continue // the cases/failures/time/rate row
			}
			if i := strings.Index(l, " steps, "); i >= 0 {
				l = l[:i] // shrink time
			}
			keep = append(keep, l)
		}
		return strings.Join(keep, "\n")
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"jobs/check-keep-going", []string{"check", "--cases", "60", "--seed", "4", "--faults", "combine-in-dtype", "--keep-going", "--max-shrinks", "20"}, 1},
		{"jobs/check-first-failure", []string{"check", "--cases", "60", "--seed", "4", "--faults", "combine-in-dtype", "--max-shrinks", "20"}, 1},
		// Faults whose verdicts depend on earlier runs of the same backend: the lane's state
		// (stale-empty-wgrad keeps the previous run's weight gradients) and its run count
		// (nondeterministic-sum) must not make the verdicts depend on --jobs.
		{"jobs/stateful-stale-empty-wgrad", []string{"check", "--cases", "60", "--seed", "3", "--faults", "stale-empty-wgrad", "--keep-going", "--no-shrink"}, 1},
		{"jobs/stateful-nondeterministic-sum", []string{"check", "--cases", "60", "--seed", "3", "--faults", "nondeterministic-sum", "--keep-going", "--no-shrink"}, 1},
		{"jobs/replay", []string{"replay", "--faults", "last-tile-dropped", "../../corpus/seeds"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c1, out1, err1 := run(t, nil, append(tc.args, "--jobs", "1")...)
			c3, out3, err3 := run(t, nil, append(tc.args, "--jobs", "3")...)
			if c1 != tc.code || c3 != tc.code {
				t.Fatalf("exit %d and %d, want %d\n%s\n%s", c1, c3, tc.code, err1, err3)
			}
			if a, b := strip(out1), strip(out3); a != b {
				t.Fatalf("--jobs 1 and --jobs 3 differ:\n--- jobs 1\n%s\n--- jobs 3\n%s", a, b)
			}
		})
	}
}
