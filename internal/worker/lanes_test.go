package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
)

// laneCase is a small case with T tokens (the hostile double's lane modes key on T).
func laneCase(t *testing.T, T int) *moe.Case {
	t.Helper()
	cfg := moe.Config{T: T, H: 8, I: 4, E: 3, K: 2, DType: moe.BF16}
	return casetest.CaseSeeds(t, cfg, uint64(T), uint64(T)+1)
}

// TestLanesBlame: several lanes share one worker process; a case that makes the process
// crash, exit, hang or run out of memory (T = 13 in the hostile double) must be the only one
// blamed, with the kind a lone run gives, while the cases of the other lanes in flight at
// that moment (a slow one on lane 0, a stream of quick ones on lane 2) get their normal
// results, bit for bit the in-process sim's.
func TestLanesBlame(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hostile worker")
	}
	bin := buildHostile(t)
	slow, bad, quick := laneCase(t, 7), laneCase(t, 13), laneCase(t, 5)
	o := gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true}
	want := map[*moe.Case]*gpu.Result{}
	for _, c := range []*moe.Case{slow, bad, quick} {
		want[c] = casetest.SimRun(t, c, o)
	}
	for _, tc := range []struct {
		name, mode  string
		kind        gpu.CaseErrorKind // of the bad case; 0: a result
		minRestarts int
	}{
		{"blame/ok", "lanes-ok", 0, 0},
		{"blame/crash", "lanes-crash", gpu.Crashed, 2},
		{"blame/exit", "lanes-exit", gpu.Crashed, 2},
		{"blame/hang", "lanes-hang", gpu.TimedOut, 2},
		{"blame/oom", "lanes-oom", gpu.OutOfMemory, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs, err := NewLanes(Options{Command: []string{bin, tc.mode}, Timeout: 2 * time.Second, StartTimeout: 20 * time.Second}, 3)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				for _, b := range bs {
					if err := b.Close(); err != nil {
						t.Error(err)
					}
				}
			}()
			if n := Lanes(bs[0]); n != 3 {
				t.Fatalf("Lanes = %d, want 3", n)
			}
			done := make(chan struct{})
			var mu sync.Mutex
			var problems []string
			good := 0
			check := func(lane int, c *moe.Case) {
				r, err := bs[lane].Run(context.Background(), c, o)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					problems = append(problems, fmt.Sprintf("lane %d (innocent case): %v", lane, err))
				case !bitsEqual(r.Y, want[c].Y) || !bitsEqual(r.DW1, want[c].DW1) || !bitsEqual(r.Stages.H1, want[c].Stages.H1):
					problems = append(problems, fmt.Sprintf("lane %d: result differs from the sim's", lane))
				default:
					good++
				}
			}
			var wg sync.WaitGroup
			for _, l := range []struct {
				lane int
				c    *moe.Case
			}{{0, slow}, {2, quick}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						check(l.lane, l.c)
						select {
						case <-done:
							return
						default:
						}
					}
				}()
			}
			time.Sleep(50 * time.Millisecond) // the slow case is in flight
			r, err := bs[1].Run(context.Background(), bad, o)
			close(done)
			wg.Wait()
			for _, p := range problems {
				t.Error(p)
			}
			if good == 0 {
				t.Error("no innocent case ran")
			}
			if tc.kind == 0 {
				if err != nil || !bitsEqual(r.Y, want[bad].Y) {
					t.Fatalf("bad case in mode ok: err %v", err)
				}
				return
			}
			ce, ok := gpu.AsCaseError(err)
			if !ok || ce.Kind != tc.kind {
				t.Fatalf("bad case: err = %v, want a %v case error", err, tc.kind)
			}
			if n := Reruns(bs[0]); n < 1 {
				t.Errorf("Reruns = %d: the bad case was not re-run alone", n)
			}
			if _, _, restarts, _ := Info(bs[0]); restarts < tc.minRestarts {
				t.Errorf("restarts = %d, want at least %d (the shared failure, then the lone one)", restarts, tc.minRestarts)
			}
			// The group works on afterwards.
			if r, err := bs[2].Run(context.Background(), quick, o); err != nil || !bitsEqual(r.Y, want[quick].Y) {
				t.Fatalf("a case after the failure: err %v", err)
			}
		})
	}
}

// TestLanesRefused: a worker that does not serve lanes (its hello declares none) is refused
// with an error that says so, at once rather than after the start timeout.
func TestLanesRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hostile worker")
	}
	bin := buildHostile(t)
	t0 := time.Now()
	_, err := NewLanes(Options{Command: []string{bin, "ok"}, StartTimeout: time.Minute}, 2)
	if err == nil || !strings.Contains(err.Error(), "does not serve lanes") {
		t.Fatalf("err = %v, want it to say the worker does not serve lanes", err)
	}
	if d := time.Since(t0); d > 30*time.Second {
		t.Fatalf("refused after %v", d)
	}
	for _, n := range []int{0, MaxLanes + 1} {
		if _, err := NewLanes(Options{Command: []string{bin, "ok"}}, n); err == nil || !strings.Contains(err.Error(), "lanes: want between 1 and") {
			t.Errorf("NewLanes(%d): err = %v, want the limit named", n, err)
		}
	}
}

// TestLanesFromEnv: the lane count a worker reads from LanesEnv.
func TestLanesFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name, v string
		want    int
		err     bool
	}{
		{"env/unset", "", 1, false}, {"env/four", "4", 4, false}, {"env/zero", "0", 0, true},
		{"env/junk", "x", 0, true}, {"env/huge", "100000", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := LanesFromEnv(func(string) string { return tc.v })
			if (err != nil) != tc.err || n != tc.want {
				t.Fatalf("LanesFromEnv(%q) = %d, %v; want %d (error %v)", tc.v, n, err, tc.want, tc.err)
			}
		})
	}
}

// TestLanesAloneNoRerun: a case that was the only one in flight from its start to its
// failure already ran alone; it is recorded without a second run (a hang would otherwise
// cost two timeouts).
func TestLanesAloneNoRerun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hostile worker")
	}
	bin := buildHostile(t)
	for _, tc := range []struct {
		name, mode string
		kind       gpu.CaseErrorKind
	}{
		{"alone/crash", "lanes-crash", gpu.Crashed},
		{"alone/hang", "lanes-hang", gpu.TimedOut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs, err := NewLanes(Options{Command: []string{bin, tc.mode}, Timeout: time.Second, StartTimeout: 20 * time.Second}, 3)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				for _, b := range bs {
					b.Close()
				}
			}()
			_, err = bs[1].Run(context.Background(), laneCase(t, 13), gpu.RunOptions{})
			if ce, ok := gpu.AsCaseError(err); !ok || ce.Kind != tc.kind {
				t.Fatalf("err = %v, want a %v case error", err, tc.kind)
			}
			if n := Reruns(bs[0]); n != 0 {
				t.Fatalf("Reruns = %d, want 0: nothing else was in flight", n)
			}
		})
	}
}

// gateBackend answers crash (crash set) or, once release is closed, a result.
type gateBackend struct {
	crash   bool
	release chan struct{}
}

func (gateBackend) Name() string { return "gate" }
func (gateBackend) Close() error { return nil }
func (b gateBackend) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	if b.crash {
		return nil, &gpu.CaseError{Kind: gpu.Crashed, Detail: "illegal address"}
	}
	<-b.release
	return fakeResult(c), nil
}

// TestServeLanesSilentAfterCrash: after one lane answered crash, ServeLanes returns
// ErrCrashed and no other lane writes a frame — a case that finished on a lost device (or on
// a backend being closed: moecheck-worker answered "Run on a closed backend") must end with
// the process, not be answered.
func TestServeLanesSilentAfterCrash(t *testing.T) {
	c := testCase(t, moe.BF16, false, false)
	req, err := EncodeRequest(1, c, gpu.RunOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var lanes []Lane
	var outs []*io.PipeReader
	var ins []*io.PipeWriter
	for k := 0; k < 2; k++ {
		ir, iw := io.Pipe()
		or, ow := io.Pipe()
		lanes = append(lanes, Lane{ir, ow})
		outs, ins = append(outs, or), append(ins, iw)
	}
	done := make(chan error, 1)
	go func() {
		done <- ServeLanes(lanes, []gpu.Backend{gateBackend{crash: true}, gateBackend{release: release}}, ServeOptions{})
	}()
	for k := range lanes { // hellos, then lane 1's case (held), then lane 0's crash
		f, err := ReadFrame(outs[k])
		if err != nil || f.Header.Lanes != 2 {
			t.Fatalf("lane %d hello: %+v, %v; want one declaring 2 lanes", k, f, err)
		}
	}
	go WriteFrame(ins[1], req)
	go WriteFrame(ins[0], req)
	if f, err := ReadFrame(outs[0]); err != nil || f.Header.Kind != KindCrash {
		t.Fatalf("lane 0: %+v, %v; want a crash", f, err)
	}
	if err := <-done; !errors.Is(err, ErrCrashed) {
		t.Fatalf("ServeLanes = %v, want ErrCrashed", err)
	}
	close(release) // lane 1's case finishes after the crash: its answer must not go out
	got := make(chan error, 1)
	go func() {
		_, err := ReadFrame(outs[1])
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("lane 1 wrote a frame after the crash (read err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
}
