package props_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// digest is everything a run reports, in order: every OnCase call and the Report.
func runDigest(t *testing.T, cfg props.RunConfig, mk func() gpu.Backend) (string, error) {
	t.Helper()
	var b strings.Builder
	cfg.Env = &props.Env{Backend: mk(), Faults: cfg.Env.Faults}
	faults := cfg.Env.Faults
	cfg.NewEnv = func(int) (*props.Env, error) { return &props.Env{Backend: mk(), Faults: faults}, nil }
	cfg.OnCase = func(cr props.CaseResult) {
		fmt.Fprintf(&b, "case %d %s pass=%v unsupported=%q skipped=%v", cr.Index, cr.Spec, cr.Pass, cr.Unsupported, cr.Skipped)
		for _, o := range cr.Outcomes {
			fmt.Fprintf(&b, " %s:%v:%s", o.Property, o.Pass, o.Message)
		}
		if cr.Shrunk != nil {
			fmt.Fprintf(&b, " shrunk=%s steps=%d tries=%d", cr.Shrunk.Spec, cr.Shrunk.Steps, cr.Shrunk.Tries)
		}
		b.WriteString("\n")
	}
	rep, err := props.Run(context.Background(), cfg)
	if rep != nil {
		fmt.Fprintf(&b, "report cases=%d unsupported=%d next=%d failures=", rep.Cases, rep.Unsupported, rep.Next)
		for _, f := range rep.Failures {
			fmt.Fprintf(&b, "%d:%s ", f.Index, f.Failed.Property)
		}
	}
	return b.String(), err
}

// failAt is a backend that fails with an internal (non-case) error on cases whose config
// string contains a marker, to end a run with an error.
type failAt struct {
	gpu.Backend
	marker string
}

func (f failAt) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	if strings.Contains(c.Config.String(), f.marker) {
		return nil, errors.New("injected internal error")
	}
	return f.Backend.Run(ctx, c, o)
}

// TestRunJobsSameAsOne checks that a run with 4 jobs reports exactly what one job reports:
// the same OnCase calls in the same order, the same failures, shrunk cases and Next, with
// injected faults, shards, a resumed start, stop-at-first-failure and an internal error.
func TestRunJobsSameAsOne(t *testing.T) {
	matches, _ := props.ByName("matches")
	det, _ := props.ByName("deterministic")
	one := []props.Property{matches, det}
	faults := fault.Of(fault.LastTileDropped, fault.EmptyExpertWgrad)
	simB := func() gpu.Backend { return sim.New(sim.Options{}) }
	for _, tc := range []struct {
		name    string
		cfg     props.RunConfig
		mk      func() gpu.Backend
		wantErr bool
		minFail int
	}{
		{name: "jobs/keep-going-faults", cfg: props.RunConfig{Properties: one, Seed: 3, Cases: 300, KeepGoing: true, NoShrink: true, Env: &props.Env{Faults: faults}}, minFail: 5},
		{name: "jobs/shard-1-of-3", cfg: props.RunConfig{Properties: one, Seed: 5, Cases: 200, Shard: 1, Shards: 3, KeepGoing: true, NoShrink: true, Env: &props.Env{Faults: faults}}, minFail: 2},
		{name: "jobs/resume-start-137", cfg: props.RunConfig{Properties: one, Seed: 3, Start: 137, Cases: 163, KeepGoing: true, NoShrink: true, Env: &props.Env{Faults: faults}}, minFail: 2},
		{name: "jobs/keep-going-shrink-all-properties", cfg: props.RunConfig{Seed: 7, Cases: 20, KeepGoing: true, MaxShrinks: 30, Env: &props.Env{Faults: faults}}, minFail: 1},
		{name: "jobs/stop-at-first-failure", cfg: props.RunConfig{Properties: one, Seed: 4, Cases: 300, MaxShrinks: 40, Env: &props.Env{Faults: fault.Of(fault.CombineInDtype)}}, minFail: 1},
		{name: "jobs/no-faults", cfg: props.RunConfig{Properties: one, Seed: 11, Cases: 100, Env: &props.Env{}}},
		{name: "jobs/internal-error", cfg: props.RunConfig{Properties: one, Seed: 3, Cases: 300, KeepGoing: true, Env: &props.Env{}},
			mk: func() gpu.Backend { return failAt{sim.New(sim.Options{}), "T=7 "} }, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mk := tc.mk
			if mk == nil {
				mk = simB
			}
			cfg1 := tc.cfg
			d1, err1 := runDigest(t, cfg1, mk)
			cfg4 := tc.cfg
			cfg4.Jobs = 4
			d4, err4 := runDigest(t, cfg4, mk)
			if (err1 != nil) != tc.wantErr || (err4 != nil) != tc.wantErr {
				t.Fatalf("errors: jobs=1 %v, jobs=4 %v; want an error: %v", err1, err4, tc.wantErr)
			}
			if err1 != nil && err1.Error() != err4.Error() {
				t.Errorf("errors differ: jobs=1 %v, jobs=4 %v", err1, err4)
			}
			if n := strings.Count(d1, "pass=false"); n < tc.minFail {
				t.Errorf("%d failing cases, want at least %d (the faults must fire for the test to mean anything)", n, tc.minFail)
			}
			if n := strings.Count(d1, "\ncase "); n < 3 {
				t.Errorf("%d cases recorded before the run ended, want at least 3", n)
			}
			if d1 != d4 {
				l1, l4 := strings.Split(d1, "\n"), strings.Split(d4, "\n")
				for i := 0; i < max(len(l1), len(l4)); i++ {
					var a, b string
					if i < len(l1) {
						a = l1[i]
					}
					if i < len(l4) {
						b = l4[i]
					}
					if a != b {
						t.Fatalf("jobs=4 differs from jobs=1 at line %d:\n  jobs=1: %s\n  jobs=4: %s", i, a, b)
					}
				}
			}
		})
	}
}

func TestRunJobsNeedsNewEnv(t *testing.T) {
	_, err := props.Run(context.Background(), props.RunConfig{Env: &props.Env{Backend: sim.New(sim.Options{})}, Jobs: 2, Cases: 2})
	if err == nil || !strings.Contains(err.Error(), "NewEnv") {
		t.Fatalf("Jobs 2 without NewEnv: %v, want an error naming NewEnv", err)
	}
}

// TestRunJobsOpensEnvsConcurrently: the jobs' environments were opened one after another, so
// with worker backends whose start-up takes seconds (a PyTorch worker: torch, CUDA, the
// probe) --jobs N waited N start-ups before the first case. Each NewEnv here waits until all
// have been called: opened one at a time, the first would time out.
func TestRunJobsOpensEnvsConcurrently(t *testing.T) {
	const jobs = 4
	var arrived sync.WaitGroup
	arrived.Add(jobs - 1)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	cfg := props.RunConfig{Env: &props.Env{Backend: sim.New(sim.Options{})}, Seed: 3, Cases: 2, Jobs: jobs,
		NewEnv: func(k int) (*props.Env, error) {
			arrived.Done()
			select {
			case <-all:
				return &props.Env{Backend: sim.New(sim.Options{})}, nil
			case <-time.After(10 * time.Second):
				return nil, fmt.Errorf("job %d: the other jobs' environments were not being opened meanwhile", k)
			}
		}}
	rep, err := props.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cases != 2 {
		t.Errorf("cases = %d, want 2", rep.Cases)
	}
}
