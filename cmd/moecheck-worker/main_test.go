package main

import (
	"bytes"
	"context"
	"github.com/moecheck/moecheck/internal/fault"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/worker"
	"github.com/moecheck/moecheck/moe"
)

// With MOECHECK_WORKER_MAIN=1 the test binary is the worker (`moecheck-worker -backend sim`,
// plus the flags in $MOECHECK_WORKER_ARGS).
func TestMain(m *testing.M) {
	if os.Getenv("MOECHECK_WORKER_MAIN") == "1" {
		args := append([]string{"-backend", "sim"}, strings.Fields(os.Getenv("MOECHECK_WORKER_ARGS"))...)
		os.Exit(run(args, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func smallCase(t *testing.T, d moe.DType) *moe.Case {
	t.Helper()
	cfg := moe.Config{T: 9, H: 8, I: 4, E: 3, K: 2, DType: d, Bias: true, EP: moe.EP{World: 2, Rank: 1}}
	c, err := mkCase(cfg, 3, moe.Normal, true)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func same(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// The real worker main serving the sim backend: a crash fault makes the worker exit, which
// costs exactly one CaseError; the next case runs in a restarted worker and matches the
// in-process backend bitwise.
func TestWorkerCrashCostsOneCase(t *testing.T) {
	b, err := worker.New(worker.Options{Command: []string{os.Args[0], "-test.run=^$"},
		Env: append(os.Environ(), "MOECHECK_WORKER_MAIN=1"), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	var caseErrs int
	for i, tc := range []struct {
		name string
		d    moe.DType
		o    gpu.RunOptions
		fs   fault.Set
	}{
		{"crash/before", moe.BF16, gpu.RunOptions{Poison: gpu.PoisonSignature}, 0},
		{"crash/fault", moe.BF16, gpu.RunOptions{}, fault.Of(fault.Crash)},
		{"crash/after-fp16", moe.FP16, gpu.RunOptions{Poison: gpu.PoisonNaN}, 0},
		{"crash/after-fp32", moe.FP32, gpu.RunOptions{Poison: gpu.PoisonStale}, 0},
	} {
		c := smallCase(t, tc.d)
		got, err := fault.Run(ctx, b, c, tc.o, tc.fs)
		if err != nil {
			ce, ok := gpu.AsCaseError(err)
			if !ok || ce.Kind != gpu.Crashed || i != 1 {
				t.Fatalf("%s: err = %v, want a crash CaseError on the crash case only", tc.name, err)
			}
			caseErrs++
			continue
		}
		want, err := sim.New(sim.Options{}).Run(ctx, c, tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if !same(got.Y, want.Y) || !same(got.DX, want.DX) || !same(got.DW1, want.DW1) || !same(got.DRW, want.DRW) || !same(got.DB2, want.DB2) {
			t.Errorf("%s: worker result differs from the in-process sim backend", tc.name)
		}
	}
	if caseErrs != 1 {
		t.Fatalf("%d case errors, want 1", caseErrs)
	}
	if name, _, restarts, _ := worker.Info(b); name != "sim" || restarts != 1 {
		t.Errorf("backend %q restarts %d, want sim and 1", name, restarts)
	}
}

// -crash-shape: the worker faults on cases of that shape only; each costs one case and a
// restart, and the cases between run normally.
func TestWorkerCrashShape(t *testing.T) {
	b, err := worker.New(worker.Options{Command: []string{os.Args[0], "-test.run=^$"},
		Env: append(os.Environ(), "MOECHECK_WORKER_MAIN=1", "MOECHECK_WORKER_ARGS=-crash-shape 9,8,4,3,2"), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	other, err := mkCase(moe.Config{T: 8, H: 8, I: 4, E: 3, K: 2, DType: moe.FP32, EP: moe.EP{World: 2, Rank: 1}}, 3, moe.Normal, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		c     *moe.Case
		crash bool
	}{
		{"crash-shape/other", other, false},
		{"crash-shape/match", smallCase(t, moe.BF16), true},
		{"crash-shape/other-again", other, false},
		{"crash-shape/match-again", smallCase(t, moe.FP16), true},
	} {
		_, err := b.Run(ctx, tc.c, gpu.RunOptions{Poison: gpu.PoisonNaN})
		ce, isCE := gpu.AsCaseError(err)
		if tc.crash != (isCE && ce.Kind == gpu.Crashed) || (!tc.crash && err != nil) {
			t.Fatalf("%s: err = %v, want crash %v", tc.name, err, tc.crash)
		}
	}
	if _, _, restarts, _ := worker.Info(b); restarts != 1 {
		t.Errorf("restarts %d, want 1 (the second crash's restart happens on the next run)", restarts)
	}
}

// The self-test harness on sim against sim: every fault case must show its fault.
func TestSelftestSimAgainstSim(t *testing.T) {
	var out bytes.Buffer
	if n := selftest(&out, sim.New(sim.Options{}), sim.New(sim.Options{}), true, false); n != 0 {
		t.Fatalf("%d failures:\n%s", n, out.String())
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"usage/unknown-backend", []string{"-backend", "nope"}, 2},
		{"usage/bad-flag", []string{"-nope"}, 2},
		{"usage/bench-without-cuda", []string{"-backend", "sim", "-bench"}, 2},
		{"usage/crash-shape-fields", []string{"-crash-shape", "1,2,3"}, 2},
		{"usage/crash-shape-zero", []string{"-crash-shape", "1,2,3,0,1"}, 2},
		// -stage-guard-checks is the opt-in; the old -no-guard-checks is still accepted.
		{"ok/guard-check-flags", []string{"-backend", "sim", "-sanitize", "-stage-guard-checks", "-no-guard-checks"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o, e bytes.Buffer
			if got := run(tc.args, strings.NewReader(""), &o, &e); got != tc.want {
				t.Fatalf("exit %d, want %d (stderr %s)", got, tc.want, e.String())
			}
		})
	}
}

// -sanitize -sanitize-corpus runs every corpus case under its poison policies; a directory
// that does not exist is an internal error (exit 3), not a silent skip.
func TestSanitizeCorpus(t *testing.T) {
	for _, tc := range []struct {
		name string
		dirs string
		want int
		min  int // "sanitize: ran" lines
	}{
		{"sanitize-corpus/seeds", "../../corpus/seeds", 0, 5 + 16},
		{"sanitize-corpus/missing", "../../corpus/nope", 3, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o, e bytes.Buffer
			if got := run([]string{"-backend", "sim", "-sanitize", "-sanitize-corpus", tc.dirs}, strings.NewReader(""), &o, &e); got != tc.want {
				t.Fatalf("exit %d, want %d (stderr %s)", got, tc.want, e.String())
			}
			if n := strings.Count(o.String(), "sanitize: ran"); n < tc.min {
				t.Errorf("%d cases ran, want ≥ %d", n, tc.min)
			}
		})
	}
}
