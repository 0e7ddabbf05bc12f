package props

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
)

// runFails is a backend whose every run fails with an internal (not a case) error after
// 300 ms (the prepared work has started by then).
type runFails struct{ gpu.Backend }

func (runFails) Run(context.Context, *moe.Case, gpu.RunOptions) (*gpu.Result, error) {
	time.Sleep(300 * time.Millisecond)
	return nil, errors.New("injected internal error")
}

// TestMatchesPrepares: matches starts the oracle's case-only work with the run of a large
// case (the trace shows it prepared and handed to the check) and passes the sim's run; a
// run that fails with an internal error while the work runs ends matches with that error
// and leaves no goroutine behind; a small case prepares nothing.
func TestMatchesPrepares(t *testing.T) {
	if testing.Short() {
		t.Skip("a case of 4,096 slots")
	}
	// GEMM 1 over all slots: 1,024·4 · 512 · 512 = 2^30 multiply-adds, oracle's threshold
	large := casetest.Case(t, moe.Config{T: 1024, H: 512, I: 256, E: 2, K: 4, DType: moe.BF16, EP: moe.EP{World: 8, Rank: 3}}, 5)
	small := casetest.Case(t, moe.Config{T: 24, H: 40, I: 24, E: 8, K: 3, DType: moe.BF16, EP: moe.EP{World: 4, Rank: 1}}, 5)
	for _, tc := range []struct {
		name     string
		c        *moe.Case
		backend  gpu.Backend
		err      bool
		prepared bool // the work started
		h1       bool // the work prepared h1 (it is stopped when the run fails)
	}{
		{"large/sim", large, sim.New(sim.Options{}), false, true, true},
		{"large/run-fails", large, runFails{sim.New(sim.Options{})}, true, true, false},
		{"small/sim", small, sim.New(sim.Options{}), false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			var trace bytes.Buffer
			env := &Env{Backend: tc.backend, Trace: &trace}
			if err := env.begin(tc.c, nil); err != nil {
				t.Fatal(err)
			}
			o, err := matches.Check(context.Background(), env, Trial{Case: tc.c, Poison: gpu.PoisonSignature})
			env.end()
			if tc.err != (err != nil) {
				t.Fatalf("error %v, want one: %v", err, tc.err)
			}
			if err == nil && !o.Pass {
				t.Fatalf("fails: %s", o.Message)
			}
			tr := trace.String()
			if got := strings.Contains(tr, "oracle prepare validate"); got != tc.prepared {
				t.Errorf("work started: %v, want %v; trace:\n%s", got, tc.prepared, tr)
			}
			if got := strings.Contains(tr, "oracle prepare h1 ("); tc.h1 && !got {
				t.Errorf("h1 not prepared; trace:\n%s", tr)
			}
			if got := strings.Contains(tr, "oracle prepared wait"); got != (tc.prepared && !tc.err) {
				t.Errorf("prepared work handed to the check: %v, want %v; trace:\n%s", got, tc.prepared && !tc.err, tr)
			}
			n := runtime.NumGoroutine()
			for deadline := time.Now().Add(5 * time.Second); n > base && time.Now().Before(deadline); n = runtime.NumGoroutine() {
				time.Sleep(time.Millisecond)
			}
			if n > base {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines after, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}
