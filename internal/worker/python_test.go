package worker

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/poison"
	"github.com/moecheck/moecheck/internal/torchtest"
	"github.com/moecheck/moecheck/moe"
)

// pythonWorker starts python/moecheck's worker (protocol from Python) with a target, or skips
// the test when no interpreter with torch is found ($MOECHECK_PYTHON, else python3). CI
// installs Debian's python3-torch, so there these tests run.
func pythonWorker(t *testing.T, args ...string) gpu.Backend {
	t.Helper()
	return pythonLanes(t, 1, args...)[0]
}

// pythonLanes starts one Python worker serving n lanes (n = 1: New) and returns its lanes.
func pythonLanes(t *testing.T, n int, args ...string) []gpu.Backend {
	t.Helper()
	py := torchtest.Python(t)
	pkg, err := filepath.Abs(filepath.Join("..", "..", "python"))
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PYTHONPATH="+pkg)
	bs, err := NewLanes(Options{Command: append([]string{py, "-m", "moecheck.worker"}, args...), Env: env,
		Timeout: 2 * time.Minute, StartTimeout: 2 * time.Minute}, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, b := range bs {
			b.Close()
		}
	})
	return bs
}

// Go encodes the request, Python decodes it and encodes the echo target's results, Go
// decodes them: every tensor must come back bit for bit (a signature NaN payload included).
func TestPythonWorkerEchoesBits(t *testing.T) {
	b := pythonWorker(t, "--target", "callable:moecheck.testing:echo")
	caps := CapabilitiesOf(b)
	if caps == nil || caps.Contract != "torch" || !strings.Contains(b.Name(), "callable:moecheck.testing:echo") {
		t.Fatalf("hello: name %q caps %+v", b.Name(), caps)
	}
	for _, d := range moe.DTypes() {
		for _, bias := range []bool{false, true} {
			c := testCase(t, d, bias, false) // gpt-oss, transposed
			if !bias {
				c.Act, c.Layout = moe.SwiGLU, moe.Standard
			}
			c.X[0] = float64(d.RoundFloat32(gpu.BufXs.SignatureNaN()))
			r, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
			if err != nil {
				t.Fatalf("%s bias=%v: %v", d, bias, err)
			}
			for _, tc := range []struct {
				name string
				got  []float32
				want []float64
			}{{"y", r.Y, c.X}, {"dx", r.DX, c.DY}, {"dw1", r.DW1, c.W1}, {"dw2", r.DW2, c.W2}, {"drw", r.DRW, c.Routing.Weights},
				{"db1", r.DB1, c.B1}, {"db2", r.DB2, c.B2}} {
				if !bitsEqual(tc.got, f32s(tc.want)) {
					t.Errorf("%s bias=%v: %s differs from what was sent", d, bias, tc.name)
				}
			}
			if s, ok := poison.Of(r.Y[0]); !ok || s != gpu.BufXs || math.Float32bits(r.Y[0]) != math.Float32bits(d.RoundFloat32(gpu.BufXs.SignatureNaN())) {
				t.Errorf("%s: y[0] = %#x lost the signature payload", d, math.Float32bits(r.Y[0]))
			}
		}
	}
}

// A Python worker's result larger than a stream chunk is decoded as it arrives (readReply)
// and comes back bit for bit.
func TestPythonWorkerStreamedResult(t *testing.T) {
	b := pythonWorker(t, "--target", "callable:moecheck.testing:echo")
	c := streamedCase(t)
	want := fakeResult(c)
	want.DRW, want.DX = f32s(c.Routing.Weights), f32s(c.DY) // the echo target's, without fakeResult's NaNs
	got, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
	if err != nil {
		t.Fatal(err)
	}
	if s := sameResult(want, got); s != "" {
		t.Errorf("tensor %s differs from what was sent", s)
	}
}

// A Python exception is a Raised case error with the traceback; the worker stays alive.
func TestPythonWorkerRaised(t *testing.T) {
	b := pythonWorker(t, "--target", "callable:moecheck.testing:raises", "--no-probe")
	c := testCase(t, moe.FP32, true, false)
	for i := 0; i < 2; i++ {
		_, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
		ce, ok := gpu.AsCaseError(err)
		if !ok || ce.Kind != gpu.Raised || !strings.Contains(ce.Detail, "raised on purpose") || !strings.Contains(ce.Detail, "Traceback") {
			t.Fatalf("run %d: err = %v, want a raised case error with the traceback", i, err)
		}
	}
	if _, _, restarts, _ := Info(b); restarts != 0 {
		t.Errorf("restarts = %d, want 0", restarts)
	}
}

// TestPythonWorkerForget: the Python worker declares forget (one lane and several; version 1
// too: python/tests/test_forget.py) and answers the Go client's forget requests with forgot: gpu.Forget succeeds without
// replacing the worker, and the cases before and after come back bit for bit.
func TestPythonWorkerForget(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lanes int
		args  []string
	}{
		{"python-forget/v2", 1, nil},
		{"python-forget/lanes", 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := pythonLanes(t, tc.lanes, append([]string{"--target", "callable:moecheck.testing:echo"}, tc.args...)...)
			for k, b := range bs {
				if cl := b.(*client); !cl.g.forget {
					t.Fatalf("lane %d: the hello does not declare forget", k)
				}
				c := laneCase(t, 3+k)
				for i := range 3 {
					if i > 0 {
						if err := gpu.Forget(b); err != nil {
							t.Fatalf("lane %d: Forget: %v", k, err)
						}
					}
					r, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
					if err != nil {
						t.Fatalf("lane %d run %d: %v", k, i, err)
					}
					if !echoed(r, c) {
						t.Fatalf("lane %d run %d: the results differ from what was sent", k, i)
					}
				}
				if _, _, restarts, _ := Info(b); restarts != 0 {
					t.Fatalf("lane %d: restarts = %d, want 0 (the worker answered forgot)", k, restarts)
				}
			}
		})
	}
}

// Capabilities declared in Python are enforced by the Go client; protocol 1 still works.
func TestPythonWorkerCapabilitiesAndV1(t *testing.T) {
	b := pythonWorker(t, "--target", "callable:moecheck.testing:aligned")
	c := testCase(t, moe.BF16, true, false) // I = 4: not a multiple of 8
	_, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
	if u, ok := gpu.IsUnsupported(err); !ok || !strings.Contains(u.Reason, "multiple of 8") {
		t.Fatalf("err = %v, want unsupported (alignment)", err)
	}
	_, err = b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonStale})
	if _, ok := gpu.IsUnsupported(err); !ok {
		t.Fatalf("stale on the CPU: err = %v, want unsupported (the dispatch poisoning cannot define stale)", err)
	}
	v1 := pythonWorker(t, "--target", "callable:moecheck.testing:echo", "--protocol", "1")
	if CapabilitiesOf(v1) != nil {
		t.Error("a version-1 Python worker declared capabilities")
	}
	if _, err := v1.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN}); err != nil {
		t.Fatalf("version 1: %v", err)
	}
}

// --no-sentinels: the Python worker's hello declares sentinels=false, and the Go client refuses
// a case with a sentinel id as unsupported (before sending it), while a sentinel-free case runs.
func TestPythonWorkerNoSentinels(t *testing.T) {
	b := pythonWorker(t, "--target", "callable:moecheck.testing:rejects_sentinels", "--no-sentinels")
	if CapabilitiesOf(b).TakesSentinels() {
		t.Fatal("the hello did not declare sentinels=false")
	}
	c := testCase(t, moe.FP32, true, false) // gpt-oss with bias: a variant the target declares
	c.Routing.IDs[0] = int32(c.E)
	c.Routing.Weights[0] = 0
	_, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
	if u, ok := gpu.IsUnsupported(err); !ok || !strings.Contains(u.Reason, "sentinels=false") {
		t.Fatalf("err = %v, want unsupported (sentinel id)", err)
	}
	for s := range c.Routing.IDs {
		c.Routing.IDs[s] = int32(s % c.E)
	}
	if _, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN}); err != nil {
		t.Fatalf("sentinel-free case: %v", err)
	}
}

// echoed reports whether r holds the echo target's answer to c, bit for bit.
func echoed(r *gpu.Result, c *moe.Case) bool {
	return bitsEqual(r.Y, f32s(c.X)) && bitsEqual(r.DX, f32s(c.DY)) && bitsEqual(r.DW1, f32s(c.W1)) &&
		bitsEqual(r.DW2, f32s(c.W2)) && bitsEqual(r.DRW, f32s(c.Routing.Weights))
}

// TestPythonWorkerLanes: one Python worker serves 3 lanes (MOECHECK_WORKER_LANES, the lanes'
// pipes on descriptors 3..6); each lane's hello declares them, and cases sent on all lanes at
// once come back bit for bit, each on its own lane (different dtypes and shapes per lane).
func TestPythonWorkerLanes(t *testing.T) {
	bs := pythonLanes(t, 3, "--target", "callable:moecheck.testing:echo")
	for k, b := range bs {
		if n := Lanes(b); n != 3 {
			t.Fatalf("lane %d: Lanes = %d, want 3", k, n)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for k, b := range bs {
		wg.Go(func() {
			for i := range 6 {
				c := laneCase(t, 3+k+i%3)
				c.X[0] = float64(c.DType.RoundFloat32(gpu.BufXs.SignatureNaN()))
				r, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
				switch {
				case err != nil:
					errs <- fmt.Sprintf("lane %d case %d: %v", k, i, err)
				case !echoed(r, c):
					errs <- fmt.Sprintf("lane %d case %d: the results differ from what was sent", k, i)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := Reruns(bs[0]); n != 0 {
		t.Errorf("Reruns = %d, want 0", n)
	}
}

// TestPythonWorkerLanesBlame: a case that loses the (simulated) device — the worker answers
// crash on its lane and exits, or dies without a reply — is the only one blamed; the case in
// flight on another lane at that moment (7 tokens: it sleeps) is re-run alone and gets its
// normal result, as with one job.
func TestPythonWorkerLanesBlame(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Python workers")
	}
	for _, tc := range []struct{ name, target string }{
		{"python-blame/fault", "callable:moecheck.testing:lanes_fault"},
		{"python-blame/exit", "callable:moecheck.testing:lanes_exit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := pythonLanes(t, 2, "--target", tc.target)
			slow, bad := laneCase(t, 7), laneCase(t, 13)
			o := gpu.RunOptions{Poison: gpu.PoisonNaN}
			var wg sync.WaitGroup
			var slowR *gpu.Result
			var slowErr error
			wg.Go(func() { slowR, slowErr = bs[0].Run(context.Background(), slow, o) })
			time.Sleep(50 * time.Millisecond) // the slow case is in flight
			_, err := bs[1].Run(context.Background(), bad, o)
			wg.Wait()
			if ce, ok := gpu.AsCaseError(err); !ok || ce.Kind != gpu.Crashed {
				t.Errorf("bad case: err = %v, want a crash", err)
			}
			if slowErr != nil || !echoed(slowR, slow) {
				t.Errorf("innocent case in flight: err = %v, want its echo", slowErr)
			}
			if Reruns(bs[0]) == 0 {
				t.Error("Reruns = 0: the in-flight cases were not re-run alone")
			}
			// the worker restarted: both lanes serve again
			for k, b := range bs {
				c := laneCase(t, 5)
				if r, err := b.Run(context.Background(), c, o); err != nil || !echoed(r, c) {
					t.Errorf("lane %d after the crash: err = %v", k, err)
				}
			}
		})
	}
}
