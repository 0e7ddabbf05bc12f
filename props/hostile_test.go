package props

import (
	"context"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/moe"
)

// cancelAfter runs the sim until its calls are used up, then cancels the run (as SIGINT
// does) and reports the cancellation, as a worker backend does.
type cancelAfter struct {
	gpu.Backend
	calls  atomic.Int64
	left   int64
	cancel context.CancelFunc
}

func (b *cancelAfter) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	if b.calls.Add(1) > b.left {
		b.cancel()
		return nil, ctx.Err()
	}
	return b.Backend.Run(ctx, c, o)
}

// TestRunNextAfterInterrupt: an interrupted run said "continue with --start 0" (Next was not
// set when a case returned the context's error).
func TestRunNextAfterInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := &cancelAfter{Backend: sim.New(sim.Options{}), left: 40, cancel: cancel}
	rep, err := Run(ctx, RunConfig{Env: &Env{Backend: b}, Cases: 1000, Start: 7, KeepGoing: true, NoShrink: true})
	if err == nil {
		t.Fatal("the interrupted run returned no error")
	}
	if rep == nil || rep.Cases == 0 || rep.Next != 7+rep.Cases {
		t.Fatalf("report %+v: want Next = 7 + the %d finished cases", rep, rep.Cases)
	}
}

// TestRunIndexOverflow: --start 9223372036854775806 --cases 5 ran 0 cases and passed.
func TestRunIndexOverflow(t *testing.T) {
	for _, tc := range []struct {
		name         string
		start, cases int
	}{
		{"overflow/near-max", math.MaxInt - 1, 5},
		{"overflow/negative-start", -1, 5},
		{"overflow/negative-cases", 0, -3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), RunConfig{Env: &Env{Backend: sim.New(sim.Options{})}, Start: tc.start, Cases: tc.cases})
			if err == nil {
				t.Fatal("Run accepted the index range")
			}
		})
	}
	if _, err := Run(context.Background(), RunConfig{Env: &Env{Backend: sim.New(sim.Options{})}, Start: math.MaxInt - 1, Cases: 5}); !strings.Contains(err.Error(), "9223372036854775806") {
		t.Errorf("err = %v, want the start named", err)
	}
}

// hangs answers every case with a timeout, counting them.
type hangs struct {
	gpu.Backend
	calls atomic.Int64
}

func (b *hangs) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	b.calls.Add(1)
	return nil, &gpu.CaseError{Kind: gpu.TimedOut, Detail: "no result within 10m0s"}
}

// TestShrinkStopsAtFirstTimeout: shrinking a hanging case cost up to 23 timeouts; it stops
// after the first.
func TestShrinkStopsAtFirstTimeout(t *testing.T) {
	b := &hangs{Backend: sim.New(sim.Options{})}
	spec, shrinker := SpecAt(1, 3, GenOptions{})
	sh, err := ShrinkFailure(context.Background(), &Env{Backend: b}, "matches", spec, shrinker, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sh.Outcome == nil {
		t.Fatal("the hang was not kept as the failure")
	}
	if n := b.calls.Load(); n != 1 {
		t.Fatalf("%d backend runs (timeouts) while shrinking, want 1", n)
	}
}

// TestRunHangCostsOneTimeout: a random case that hung was run again by the shrinker to
// reproduce it, a second full case timeout (10 minutes by default) for nothing to shrink.
func TestRunHangCostsOneTimeout(t *testing.T) {
	b := &hangs{Backend: sim.New(sim.Options{})}
	m, err := ByName("matches")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), RunConfig{Env: &Env{Backend: b}, Cases: 1, Properties: []Property{m}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) != 1 {
		t.Fatalf("%d failures, want the hang as 1", len(rep.Failures))
	}
	if n := b.calls.Load(); n != 1 {
		t.Fatalf("%d backend runs (timeouts) for one hanging case, want 1", n)
	}
}
