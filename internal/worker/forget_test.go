package worker

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// forgetBackend is fakeBackend that counts its Forget calls and fails them with err.
type forgetBackend struct {
	fakeBackend
	n   *int
	err error
}

func (b forgetBackend) Forget() error {
	*b.n++
	return b.err
}

// helloOf serves nothing on b and returns its hello.
func helloOf(t *testing.T, b gpu.Backend) Header {
	t.Helper()
	var out bytes.Buffer
	if err := Serve(strings.NewReader(""), &out, b, ServeOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFrame(&out)
	if err != nil {
		t.Fatal(err)
	}
	return f.Header
}

// TestServeForget: the hello declares forget exactly for a backend that forgets
// (gpu.Forgetter); a forget request calls its Forget and is answered forgot with its id, or an
// error frame when it carries tensors (bad_request, Forget not called) or Forget fails
// (internal); and it drops the case the lane holds for same_case requests (a fresh worker
// holds none).
func TestServeForget(t *testing.T) {
	n := 0
	if h := helloOf(t, forgetBackend{fakeBackend{}, &n, nil}); !h.Forget {
		t.Error("the hello of a backend that forgets does not declare forget")
	}
	if h := helloOf(t, fakeBackend{}); h.Forget {
		t.Error("the hello of a backend without state declares forget")
	}
	c := testCase(t, moe.BF16, false, false)
	e, err := encodeCase(c)
	if err != nil {
		t.Fatal(err)
	}
	o := gpu.RunOptions{Poison: gpu.PoisonNaN}
	withTensors := &Frame{Header: Header{Type: TypeForget, ID: 4, Tensors: e.tensors[:1]}, Payload: e.payload[:e.tensors[0].Bytes]}
	reqs := []*Frame{
		e.request(1, o, 0),
		e.sameRequest(2, o, 0), // held: a result
		{Header: Header{Type: TypeForget, ID: 3}},
		e.sameRequest(5, o, 0), // forgotten: bad_request
		withTensors,
	}
	got := serveAll(t, forgetBackend{fakeBackend{}, &n, nil}, reqs)
	if len(got) != len(reqs) {
		t.Fatalf("%d replies to %d requests", len(got), len(reqs))
	}
	want := []struct {
		typ, kind, detail string
		id                uint64
	}{
		{TypeResult, "", "", 1},
		{TypeResult, "", "", 2},
		{TypeForgot, "", "", 3},
		{TypeError, KindBadRequest, "holds no case", 5},
		{TypeError, KindBadRequest, "a forget request with 1 tensors", 4},
	}
	for i, w := range want {
		f, err := ReadFrame(bytes.NewReader(got[i]))
		if err != nil {
			t.Fatal(err)
		}
		h := f.Header
		if h.Type != w.typ || h.Kind != w.kind || h.ID != w.id || !strings.Contains(h.Detail, w.detail) {
			t.Errorf("reply %d: %s %s id %d %q, want %s %s id %d mentioning %q", i, h.Type, h.Kind, h.ID, h.Detail, w.typ, w.kind, w.id, w.detail)
		}
		if h.Type == TypeForgot && (len(h.Tensors) != 0 || len(f.Payload) != 0) {
			t.Errorf("forgot carries %d tensors and %d bytes", len(h.Tensors), len(f.Payload))
		}
	}
	if n != 1 {
		t.Errorf("Forget called %d times, want 1 (the request with tensors is refused)", n)
	}
	got = serveAll(t, forgetBackend{fakeBackend{}, &n, errors.New("device busy")}, []*Frame{{Header: Header{Type: TypeForget, ID: 9}}})
	f, err := ReadFrame(bytes.NewReader(got[0]))
	if err != nil {
		t.Fatal(err)
	}
	if h := f.Header; h.Type != TypeError || h.Kind != KindInternal || h.ID != 9 || !strings.Contains(h.Detail, "device busy") {
		t.Errorf("a failed Forget answered %+v, want an internal error naming it", h)
	}
}

// TestForgetHostile: the client's Forget against workers that misbehave on a forget request
// (testdata/hostile, modes forget-*) and against one that does not declare forget (ok: it
// exits 6 if asked). A worker that answers anything but forgot breaks the protocol: Forget
// returns an ErrProtocol error naming the reply, never a case error, and the next Run starts
// a fresh worker; one that ends or hangs is replaced (the next Run starts a fresh worker,
// which carries nothing), and Forget succeeds. Every case still gets its correct result.
func TestForgetHostile(t *testing.T) {
	bin := buildHostile(t)
	c := testCase(t, moe.BF16, false, false)
	for _, tc := range []struct {
		name, mode string
		want       string // "" = Forget succeeds
		restarts   int    // after the run that follows
	}{
		{"forget/ok", "forget-ok", "", 0},
		{"forget/undeclared", "ok", "", 0},
		{"forget/garbage", "forget-garbage", "malformed frame", 1},
		{"forget/error", "forget-error", "forget answered internal: cannot forget", 1},
		{"forget/wrong-id", "forget-wrong-id", "want the reply to forget request", 1},
		{"forget/wrong-type", "forget-wrong-type", `forget answered with a "party" frame`, 1},
		{"forget/payload", "forget-payload", "payload length 8 exceeds the limit 0", 1},
		{"forget/exit", "forget-exit", "", 1},
		{"forget/hang", "forget-hang", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(Options{Command: []string{bin, tc.mode}, Timeout: time.Second, StartTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			run := func() {
				t.Helper()
				r, err := b.Run(context.Background(), c, gpu.RunOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Y) != c.LenX() {
					t.Fatalf("y has %d values, want %d", len(r.Y), c.LenX())
				}
			}
			run()
			t0 := time.Now()
			err = gpu.Forget(b)
			if d := time.Since(t0); d > 10*time.Second {
				t.Fatalf("Forget took %v with a 1 s timeout", d)
			}
			if tc.want == "" && err != nil {
				t.Fatalf("Forget: %v", err)
			}
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrProtocol) {
					t.Fatalf("Forget: %v, want an ErrProtocol error mentioning %q", err, tc.want)
				}
				if _, ok := gpu.AsCaseError(err); ok {
					t.Fatalf("a protocol error reported as a case error: %v", err)
				}
			}
			run()
			if _, _, restarts, _ := Info(b); restarts != tc.restarts {
				t.Fatalf("restarts = %d, want %d; stderr: %s", restarts, tc.restarts, StderrTail(b))
			}
		})
	}
}

// TestForgetHangBound: a worker that never answers a forget is killed after ForgetTimeout,
// not after the case timeout (a minute here, ten by default): the forget returns, the next
// run starts a fresh worker and gets its result. Before ForgetTimeout a hung forget waited
// the whole case timeout. Regression test.
func TestForgetHangBound(t *testing.T) {
	bin := buildHostile(t)
	c := testCase(t, moe.BF16, false, false)
	b, err := New(Options{Command: []string{bin, "forget-hang"}, Timeout: time.Minute, ForgetTimeout: 300 * time.Millisecond, StartTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Run(context.Background(), c, gpu.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := gpu.Forget(b); err != nil {
		t.Fatalf("Forget: %v (a hung worker is replaced)", err)
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Fatalf("Forget took %v with a 300 ms forget timeout (the case timeout is a minute)", d)
	}
	r, err := b.Run(context.Background(), c, gpu.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Y) != c.LenX() {
		t.Fatalf("y has %d values, want %d", len(r.Y), c.LenX())
	}
	if _, _, restarts, _ := Info(b); restarts != 1 {
		t.Fatalf("restarts = %d, want 1", restarts)
	}
}

// TestForgetLanesBlame: a worker process that ends while one lane's forget request is out
// (testdata/hostile, mode lanes-forget-exit) ends the case another lane has in flight; that
// case is not blamed for it — it is re-run alone, as after another lane's case failure — and
// gets its correct result. The forget is in flight on the shared process like a case.
//
// No timing: the hostile worker answers the forget by exiting only once the slow case is in
// flight on the other lane (so the client sent both requests), the slow case never ends
// before the process does, and its re-run in the next process completes at once (a marker
// file in HOSTILE_DIR says the process is the re-run's).
func TestForgetLanesBlame(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hostile worker")
	}
	bin := buildHostile(t)
	env := append(os.Environ(), "HOSTILE_DIR="+t.TempDir())
	bs, err := NewLanes(Options{Command: []string{bin, "lanes-forget-exit"}, Env: env, Timeout: 20 * time.Second, StartTimeout: 20 * time.Second}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, b := range bs {
			b.Close()
		}
	}()
	ctx := context.Background()
	if _, err := bs[0].Run(ctx, laneCase(t, 5), gpu.RunOptions{}); err != nil { // starts the process
		t.Fatal(err)
	}
	slow := laneCase(t, 7) // hostile SlowT: in flight until the forget ends the process
	type out struct {
		r   *gpu.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		r, err := bs[0].Run(ctx, slow, gpu.RunOptions{})
		done <- out{r, err}
	}()
	if err := gpu.Forget(bs[1]); err != nil { // answered by the process's end once the slow case is out
		t.Fatalf("Forget: %v (a worker that ends is replaced)", err)
	}
	o := <-done
	if o.err != nil {
		t.Fatalf("the case in flight on the other lane: %v, want its result (re-run alone)", o.err)
	}
	if len(o.r.Y) != slow.LenX() {
		t.Fatalf("y has %d values, want %d", len(o.r.Y), slow.LenX())
	}
	if n := Reruns(bs[0]); n != 1 {
		t.Fatalf("Reruns = %d, want 1", n)
	}
}

// TestClientForgetSameCase: after a forget request the worker holds no case, so the lane
// sends its next run whole (a same_case request would be refused and resent); to a worker
// without forget no request goes and the lane keeps sending same_case requests.
func TestClientForgetSameCase(t *testing.T) {
	c := testCase(t, moe.BF16, true, false)
	o := gpu.RunOptions{Poison: gpu.PoisonNaN}
	for _, tc := range []struct {
		name   string
		env    string
		sames  []int // same_case requests after runs 1 to 4 (a forget before run 3)
		forget bool
	}{
		{"client-forget/declared", "MOECHECK_WORKER_HELPER_FORGET=1", []int{0, 1, 1, 2}, true},
		{"client-forget/undeclared", "MOECHECK_WORKER_HELPER_FORGET=0", []int{0, 1, 2, 3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(Options{Command: []string{os.Args[0], "-test.run=^$"}, Env: append(os.Environ(), "MOECHECK_WORKER_HELPER=1", tc.env),
				Timeout: time.Minute, StartTimeout: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			cl := b.(*client)
			if cl.g.forget != tc.forget {
				t.Fatalf("hello's forget = %v, want %v", cl.g.forget, tc.forget)
			}
			for i, want := range tc.sames {
				if i == 2 {
					if err := gpu.Forget(b); err != nil {
						t.Fatal(err)
					}
				}
				r, err := b.Run(context.Background(), c, o)
				if err != nil {
					t.Fatal(err)
				}
				if !bitsEqual(r.Y, f32s(c.X)) {
					t.Fatalf("run %d: the worker ran another case", i+1)
				}
				if cl.sames != want {
					t.Fatalf("run %d: %d same_case requests, want %d", i+1, cl.sames, want)
				}
			}
		})
	}
}

// BenchmarkForget: one forget round trip to a worker process (the cost a trial pays through a
// worker that declares forget), against the test binary as the worker.
func BenchmarkForget(b *testing.B) {
	be, err := New(Options{Command: []string{os.Args[0], "-test.run=^$"}, Env: append(os.Environ(), "MOECHECK_WORKER_HELPER=1", "MOECHECK_WORKER_HELPER_FORGET=1"),
		Timeout: time.Minute, StartTimeout: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	for b.Loop() {
		if err := gpu.Forget(be); err != nil {
			b.Fatal(err)
		}
	}
}
