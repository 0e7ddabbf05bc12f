package worker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// buildHostile builds testdata/hostile, the misbehaving worker.
func buildHostile(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hostile")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/hostile").CombinedOutput()
	if err != nil {
		t.Fatalf("building the hostile worker: %v\n%s", err, out)
	}
	return bin
}

// TestHostileWorker plays every misbehaviour of testdata/hostile against the client: each
// ends in a clear error naming the problem (or a correct result), never a panic, a hang past
// the configured timeouts, or an allocation beyond the case's own tensors.
func TestHostileWorker(t *testing.T) {
	bin := buildHostile(t)
	start := []struct {
		name, mode, want string
	}{
		{"start/no-hello", "no-hello", "no hello from"},
		{"start/wrong-version", "wrong-version", "version 99"},
		{"start/huge-header", "huge-header", "header length 4294967295"},
		{"start/huge-hello-payload", "huge-hello-payload", "payload length 17179869184 exceeds the 0 bytes"},
	}
	for _, tc := range start {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			b, err := New(Options{Command: []string{bin, tc.mode}, StartTimeout: 500 * time.Millisecond})
			if err == nil {
				b.Close()
				t.Fatal("New accepted the worker")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if d := time.Since(t0); d > 10*time.Second {
				t.Fatalf("New took %v with a 500ms start timeout", d)
			}
		})
	}
	c := testCase(t, moe.BF16, true, false)
	run := []struct {
		name, mode string
		want       string // "" = a correct result
		kind       gpu.CaseErrorKind
		protocol   bool
	}{
		{"run/ok", "ok", "", 0, false},
		{"run/huge-payload", "huge-payload", "exceeds the limit", 0, true},
		{"run/offset-overflow", "offset-overflow", `tensor "y" at [9223372036854775560, +256) outside the payload`, 0, true},
		{"run/offset-range", "offset-range", "outside the payload", 0, true},
		{"run/negative-offset", "negative-offset", "outside", 0, true},
		{"run/wrong-dtype", "wrong-dtype", "has dtype i64, want bf16", 0, true},
		{"run/wrong-shape", "wrong-shape", "has shape [3 1000]", 0, true},
		{"run/wrong-size", "wrong-size", `tensor "y" has`, 0, true},
		{"run/wrong-id", "wrong-id", "reply to request", 0, true},
		{"run/wrong-type", "wrong-type", `unexpected reply type "party"`, 0, true},
		{"run/garbage", "garbage", "malformed frame", 0, true},
		{"run/hang-mid-frame", "hang-mid-frame", "no result within", gpu.TimedOut, false},
		{"run/early-exit", "early-exit", "worker exited", gpu.Crashed, false},
		{"run/stderr-flood", "stderr-flood", "", 0, false},
	}
	for _, tc := range run {
		t.Run(tc.name, func(t *testing.T) {
			b, err := New(Options{Command: []string{bin, tc.mode}, Timeout: time.Second, StartTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r, err := b.Run(context.Background(), c, gpu.RunOptions{})
			runtime.ReadMemStats(&after)
			// The case's own tensors are a few KiB; 64 MiB leaves room for the stderr tail
			// and the runtime, and is far below the 16 GiB a trusting reader would reserve.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Errorf("the client allocated %d MiB for a %d-value case", grew>>20, c.Elements())
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Y) != c.LenX() {
					t.Fatalf("y has %d values, want %d", len(r.Y), c.LenX())
				}
				return
			}
			if err == nil {
				t.Fatal("Run accepted the reply")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if got := errors.Is(err, ErrProtocol); got != tc.protocol {
				t.Fatalf("errors.Is(err, ErrProtocol) = %v, want %v (err %v)", got, tc.protocol, err)
			}
			ce, isCase := gpu.AsCaseError(err)
			if tc.protocol && isCase {
				t.Fatalf("a protocol error reported as a case error (%v): it would count as a kernel failure", ce.Kind)
			}
			if !tc.protocol && (!isCase || ce.Kind != tc.kind) {
				t.Fatalf("err = %v, want a %v case error", err, tc.kind)
			}
			// The worker was replaced: the next case starts a fresh one (which misbehaves
			// again, but the client does not reuse a worker in an unknown state).
			if _, _, restarts, _ := Info(b); restarts != 0 {
				t.Fatalf("restarts = %d before the next run", restarts)
			}
		})
	}
}

// TestOffsetOverflow: offsets near 2^63 made Offset+Bytes overflow, and the bounds check
// passed: the client panicked on such a result, the worker on such a request.
func TestOffsetOverflow(t *testing.T) {
	c := testCase(t, moe.BF16, false, false)
	t.Run("overflow/result", func(t *testing.T) {
		f := EncodeResult(1, c.Config, fakeResult(c))
		f.Header.Tensors[0].Offset, f.Header.Tensors[0].Bytes = 1<<63-248, 256
		if _, err := DecodeResult(f, c.Config); err == nil || !strings.Contains(err.Error(), "outside the payload") {
			t.Fatalf("err = %v, want the tensor named outside the payload", err)
		}
	})
	t.Run("overflow/request", func(t *testing.T) {
		f, err := EncodeRequest(9, c, gpu.RunOptions{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Header.Tensors[0].Offset = 1<<63 - 2
		var in, out bytes.Buffer
		if err := WriteFrame(&in, f); err != nil {
			t.Fatal(err)
		}
		if err := Serve(&in, &out, fakeBackend{}, ServeOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFrame(&out); err != nil { // hello
			t.Fatal(err)
		}
		r, err := ReadFrame(&out)
		if err != nil {
			t.Fatal(err)
		}
		if h := r.Header; h.Type != TypeError || h.Kind != KindBadRequest || h.ID != 9 || !strings.Contains(h.Detail, "outside the payload") {
			t.Fatalf("reply %+v, want a bad_request naming the tensor", h)
		}
	})
}

// TestServeExitsWhenStdinCloses: a client killed mid-case (stdin closes) ends the case's
// context, and Serve returns instead of running the case to its end.
func TestServeExitsWhenStdinCloses(t *testing.T) {
	c := testCase(t, moe.BF16, false, false)
	f, err := EncodeRequest(1, c, gpu.RunOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    gpu.Backend
	}{{"hangup/observes-ctx", ctxBackend{}}, {"hangup/ignores-ctx", stuckBackend{}}} {
		t.Run(tc.name, func(t *testing.T) { serveHangup(t, tc.b, f) })
	}
}

// stuckBackend never returns, whatever its context says (a hung kernel).
type stuckBackend struct{ ctxBackend }

func (stuckBackend) Run(context.Context, *moe.Case, gpu.RunOptions) (*gpu.Result, error) {
	select {}
}

func serveHangup(t *testing.T, b gpu.Backend, f *Frame) {
	pr, pw := io.Pipe()
	go func() {
		WriteFrame(pw, f)
		time.Sleep(50 * time.Millisecond)
		pw.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- Serve(pr, io.Discard, b, ServeOptions{}) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrHangup) {
			t.Fatalf("err = %v, want ErrHangup", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve still running 20 s after its input closed mid-case")
	}
}

// ctxBackend runs until its context ends.
type ctxBackend struct{}

func (ctxBackend) Name() string { return "ctx" }
func (ctxBackend) Close() error { return nil }
func (ctxBackend) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
