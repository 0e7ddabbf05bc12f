package props_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/worker"
	"github.com/moecheck/moecheck/props"
)

// TestTrialForgetsOtherCases: a trial's outcome does not depend on what the backend instance
// ran before it. With fault stale-empty-wgrad the sim keeps the previous run's weight
// gradients for experts that are empty now; a trial whose empty expert another case of the
// same shape filled used to fail matches after that case and pass it on a fresh instance, so
// verdicts depended on --jobs (CI saw it: TestJobsSameOutput/jobs/stateful-stale-empty-wgrad).
// Every trial now starts with the backend's cross-case state forgotten (gpu.Forgetter:
// sim.Backend.Forget in process; through a worker, the client's forget request, which the
// worker serves with its backend's Forget), on a worker of one lane and on a lane of a
// shared worker; the trial's own runs still share theirs, and history still catches the
// fault.
func TestTrialForgetsOtherCases(t *testing.T) {
	full, err := props.ParseSpec("T=16 H=8 I=8 E=3 K=3 world=1 rank=0 global=0 dtype=bf16 act=swiglu layout=standard bias=0 routing=uniform weights=unit data=normal poison=nan seed=5")
	if err != nil {
		t.Fatal(err)
	}
	empty, err := props.ParseSpec("T=2 H=8 I=8 E=3 K=1 world=1 rank=0 global=0 dtype=bf16 act=swiglu layout=standard bias=0 routing=all-one weights=unit data=normal poison=nan seed=6")
	if err != nil {
		t.Fatal(err)
	}
	before, err := props.SpecTrial(full)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := props.SpecTrial(empty)
	if err != nil {
		t.Fatal(err)
	}
	ps := []props.Property{}
	for _, name := range []string{"matches", "poison-invariance", "deterministic"} {
		p, err := props.ByName(name)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	fs := fault.Of(fault.StaleEmptyWgrad)
	dir := t.TempDir()
	var cmd []string // the worker, built once
	for _, tc := range []struct {
		name  string
		lanes int // 0: in process
	}{{"forget/sim", 0}, {"forget/worker", 1}, {"forget/worker-lane", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			open := func() gpu.Backend { return sim.New(sim.Options{}) }
			if tc.lanes > 0 {
				if testing.Short() {
					t.Skip("builds the worker")
				}
				if cmd == nil {
					cmd = workerCommand(t, dir)
				}
				open = func() gpu.Backend {
					bs, err := worker.NewLanes(worker.Options{Command: cmd}, tc.lanes)
					if err != nil {
						t.Fatal(err)
					}
					for _, b := range bs {
						t.Cleanup(func() { b.Close() })
					}
					return bs[len(bs)-1]
				}
			}
			env := func() *props.Env {
				return &props.Env{Backend: open(), Faults: fs, New: func() (gpu.Backend, error) { return open(), nil }}
			}
			alone, _, err := props.CheckTrial(context.Background(), env(), ps, tr)
			if err != nil {
				t.Fatal(err)
			}
			shared := env()
			if _, _, err := props.CheckTrial(context.Background(), shared, ps, before); err != nil {
				t.Fatal(err)
			}
			after, _, err := props.CheckTrial(context.Background(), shared, ps, tr)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(outs(alone)) != fmt.Sprint(outs(after)) {
				t.Errorf("the trial after another case:\n%v\non a fresh instance:\n%v", outs(after), outs(alone))
			}
			// The trial's own runs still carry state: history catches the fault.
			h, err := props.ByName("history")
			if err != nil {
				t.Fatal(err)
			}
			rep, err := props.Run(context.Background(), props.RunConfig{Env: env(), Properties: []props.Property{h}, Seed: 1, Cases: 100, MaxShrinks: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Failures) == 0 {
				t.Error("history no longer catches stale-empty-wgrad")
			}
		})
	}
}

// outs is each outcome's property, verdict and failures.
func outs(os []*props.Outcome) []string {
	var s []string
	for _, o := range os {
		s = append(s, fmt.Sprintf("%s pass=%v %v", o.Property, o.Pass, o.Failures))
	}
	return s
}

// TestForgetRestartsRunOrder: fault nondeterministic-sum orders each case's slot sums by how
// often the instance ran that case before; Forget starts that count again, so a case run in a
// new trial sums as on a fresh instance (in process and through a worker).
func TestForgetRestartsRunOrder(t *testing.T) {
	s, err := props.ParseSpec("T=64 H=8 I=8 E=3 K=3 world=1 rank=0 global=0 dtype=fp32 act=swiglu layout=standard bias=0 routing=uniform weights=unit data=normal poison=nan seed=5")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := props.SpecTrial(s)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		worker bool
	}{{"run-order/sim", false}, {"run-order/worker", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var b gpu.Backend = sim.New(sim.Options{})
			if tc.worker {
				if testing.Short() {
					t.Skip("builds the worker")
				}
				if b, err = worker.New(worker.Options{Command: workerCommand(t, t.TempDir())}); err != nil {
					t.Fatal(err)
				}
			}
			defer b.Close()
			var ys [][]float32
			for i := range 3 {
				if i == 2 {
					if err := gpu.Forget(b); err != nil {
						t.Fatal(err)
					}
				}
				r, err := fault.Run(ctx, b, tr.Case, gpu.RunOptions{Poison: gpu.PoisonNaN}, fault.Of(fault.NondeterministicSum))
				if err != nil {
					t.Fatal(err)
				}
				ys = append(ys, r.Y)
			}
			same := func(a, b []float32) bool { return fmt.Sprint(a) == fmt.Sprint(b) }
			if same(ys[0], ys[1]) {
				t.Fatal("the second run summed as the first: the case does not show the fault")
			}
			if !same(ys[0], ys[2]) {
				t.Error("after Forget the case's run differs from its first run on the instance")
			}
		})
	}
}

// workerCommand is the worker the forget tests run: $MOECHECK_FORGET_WORKER (a command line,
// e.g. "moecheck-worker -backend cuda" on a GPU host, the worker built with -tags cuda), else
// moecheck-worker -backend sim, built into dir.
func workerCommand(t *testing.T, dir string) []string {
	t.Helper()
	if w := strings.Fields(os.Getenv("MOECHECK_FORGET_WORKER")); len(w) > 0 {
		return w
	}
	bin := filepath.Join(dir, "moecheck-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/moecheck-worker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return []string{bin, "-backend", "sim"}
}
