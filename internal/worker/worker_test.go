package worker

import (
	"bytes"
	"context"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/poison"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// The test binary doubles as a worker: with MOECHECK_WORKER_HELPER=1 it serves fakeBackend
// on stdin/stdout instead of running tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv(benchEnv); mode != "" {
		serveBench(mode)
		os.Exit(0)
	}
	if os.Getenv("MOECHECK_WORKER_HELPER") == "1" {
		var b gpu.Backend = fakeBackend{}
		if os.Getenv("MOECHECK_WORKER_HELPER_FORGET") == "1" {
			b = forgetBackend{fakeBackend{}, new(int), nil}
		}
		err := Serve(os.Stdin, os.Stdout, b, helperServeOptions())
		if err == ErrCrashed {
			os.Exit(3)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Magic poison seeds steer fakeBackend.
const (
	seedDie      = 0xdead // exit mid-case without a reply (a kernel fault killing the process)
	seedHang     = 0x4a46 // never answer
	seedOOM      = 0x00e  // answer out-of-memory and carry on
	seedReported = 0xc0de // answer a crash (as the CUDA backend does), then exit
	seedRaised   = 0x4a15 // answer "the path raised" and carry on
)

// fakeBackend returns a deterministic result that carries signature NaNs, or misbehaves as
// the poison seed says. The Crash fault kills the process mid-case, like a kernel fault.
type fakeBackend struct{}

func (fakeBackend) Name() string { return "fake" }
func (fakeBackend) Close() error { return nil }
func (b fakeBackend) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	return b.RunFaults(ctx, c, o, 0)
}

func (fakeBackend) RunFaults(ctx context.Context, c *moe.Case, o gpu.RunOptions, fs fault.Set) (*gpu.Result, error) {
	switch {
	case fs.Has(fault.Crash) || o.PoisonSeed == seedDie:
		fmt.Fprintln(os.Stderr, "fake: illegal address in kernel gather_rows")
		os.Exit(2)
	case o.PoisonSeed == seedHang:
		time.Sleep(time.Hour)
	case o.PoisonSeed == seedOOM:
		return nil, &gpu.CaseError{Kind: gpu.OutOfMemory, Detail: "fake: out of memory allocating h1"}
	case o.PoisonSeed == seedRaised:
		fmt.Fprintln(os.Stderr, "Traceback (most recent call last):\nValueError: fake")
		return nil, &gpu.CaseError{Kind: gpu.Raised, Detail: "ValueError: fake"}
	case o.PoisonSeed == seedReported:
		return nil, &gpu.CaseError{Kind: gpu.Crashed, Detail: "fake: CUDA_ERROR_ILLEGAL_ADDRESS after stage gemm1"}
	}
	return fakeResult(c), nil
}

func f32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// fakeResult: Y = X, DX = DY, DW1 = W1, DW2 = W2, DRW = routing weights, with the signature
// NaN of d_rw in DRW[0] and of dX in DX[0].
func fakeResult(c *moe.Case) *gpu.Result {
	r := &gpu.Result{Y: f32s(c.X), DX: f32s(c.DY), DW1: f32s(c.W1), DW2: f32s(c.W2), DRW: f32s(c.Routing.Weights)}
	if c.Bias {
		r.DB1, r.DB2 = f32s(c.B1), f32s(c.B2)
	}
	r.DRW[0] = c.DType.RoundFloat32(poison.NaN(gpu.BufDRW))
	r.DX[0] = c.DType.RoundFloat32(poison.NaN(gpu.BufDX))
	return r
}

func testCase(t testing.TB, d moe.DType, bias, global bool) *moe.Case {
	t.Helper()
	cfg := moe.Config{T: 5, H: 8, I: 4, E: 3, K: 2, DType: d, Bias: bias, Act: moe.GptOss, Layout: moe.Transposed}
	if global {
		cfg.EP = moe.EP{World: 2, Rank: 1}
	}
	r, g, err := moe.RandomGlobalRouting(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	c, err := moe.Generate(cfg, r, 11, moe.Normal)
	if err != nil {
		t.Fatal(err)
	}
	if global {
		c.Global = g
	}
	return c
}

func bitsEqual(a, b []float32) bool {
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

func TestRequestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name         string
		d            moe.DType
		bias, global bool
	}{
		{"req/bf16", moe.BF16, false, false},
		{"req/fp16-bias", moe.FP16, true, false},
		{"req/fp32-global", moe.FP32, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCase(t, tc.d, tc.bias, tc.global)
			o := gpu.RunOptions{Poison: gpu.PoisonSignature, PoisonSeed: 99, Stages: true}
			fs := fault.Of(fault.ClampSentinel, fault.Crash)
			f, err := EncodeRequest(3, c, o, fs)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := WriteFrame(&buf, f); err != nil {
				t.Fatal(err)
			}
			g, err := ReadFrame(&buf)
			if err != nil {
				t.Fatal(err)
			}
			c2, o2, fs2, err := DecodeRequest(g)
			if err != nil {
				t.Fatal(err)
			}
			if fs2 != fs {
				t.Errorf("faults %s, want %s", fs2, fs)
			}
			if o2 != o {
				t.Errorf("options %+v, want %+v", o2, o)
			}
			if fmt.Sprint(c2) != fmt.Sprint(c) {
				t.Errorf("case changed in the round trip:\n got %v\nwant %v", c2, c)
			}
		})
	}
}

func TestResultRoundTripKeepsNaNPayloads(t *testing.T) {
	for _, d := range moe.DTypes() {
		t.Run("res/"+d.String(), func(t *testing.T) {
			c := testCase(t, d, true, false)
			r := fakeResult(c)
			S := c.S()
			nan := func(b gpu.Buffer, n int) []float32 {
				v := make([]float32, n)
				for i := range v {
					v[i] = d.RoundFloat32(poison.NaN(b))
				}
				v[0] = float32(math.Inf(-1))
				if n > 1 {
					v[1] = float32(math.Copysign(0, -1))
				}
				return v
			}
			r.Stages = &gpu.Stages{Perm: make([]int32, S), Offsets: []int32{1, 2, 3},
				Xs: nan(gpu.BufXs, S*c.H), H1: nan(gpu.BufH1, S*2*c.I), DAct: nan(gpu.BufDAct, S*c.I)}
			var buf bytes.Buffer
			if err := WriteFrame(&buf, EncodeResult(5, c.Config, r)); err != nil {
				t.Fatal(err)
			}
			f, err := ReadFrame(&buf)
			if err != nil {
				t.Fatal(err)
			}
			r2, err := DecodeResult(f, c.Config)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range [][2][]float32{{r.Y, r2.Y}, {r.DX, r2.DX}, {r.DW1, r2.DW1}, {r.DB1, r2.DB1}, {r.DW2, r2.DW2},
				{r.DB2, r2.DB2}, {r.DRW, r2.DRW}, {r.Stages.Xs, r2.Stages.Xs}, {r.Stages.H1, r2.Stages.H1}, {r.Stages.DAct, r2.Stages.DAct}} {
				if !bitsEqual(p[0], p[1]) {
					t.Fatalf("tensor changed in the round trip")
				}
			}
			if b, ok := poison.Of(r2.DRW[0]); !ok || b != gpu.BufDRW {
				t.Errorf("DRW[0] = %#x: signature of d_rw lost", math.Float32bits(r2.DRW[0]))
			}
			if b, ok := poison.Of(r2.Stages.H1[5]); !ok || b != gpu.BufH1 {
				t.Errorf("H1[5] = %#x: signature of h1 lost", math.Float32bits(r2.Stages.H1[5]))
			}
			if r2.Stages.Offsets[2] != 3 {
				t.Errorf("offsets %v", r2.Stages.Offsets)
			}
		})
	}
}

func TestReadFrameRejectsMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"bad/empty", nil, "EOF"},
		{"bad/zero-header", []byte{0, 0, 0, 0}, "header length 0"},
		{"bad/huge-header", []byte{0xff, 0xff, 0xff, 0x7f}, "header length"},
		{"bad/truncated", []byte{10, 0, 0, 0, '{'}, "unexpected EOF"},
		{"bad/not-json", append([]byte{3, 0, 0, 0}, "abc"...), "header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tc.b))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestDecodeRequestRejectsBadTensors(t *testing.T) {
	c := testCase(t, moe.BF16, false, false)
	f, err := EncodeRequest(1, c, gpu.RunOptions{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Header.Tensors[0].Bytes -= 2
	if _, _, _, err := DecodeRequest(f); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("err = %v, want a complaint about x", err)
	}
	f.Header.Tensors[0].Bytes += 2
	f.Header.Options.Faults = []string{"no-such-fault"}
	if _, _, _, err := DecodeRequest(f); err == nil || !strings.Contains(err.Error(), "no-such-fault") {
		t.Fatalf("err = %v, want unknown fault", err)
	}
}

func helper(t *testing.T, timeout time.Duration) gpu.Backend {
	t.Helper()
	b, err := New(Options{Command: []string{os.Args[0], "-test.run=^$"}, Env: append(os.Environ(), "MOECHECK_WORKER_HELPER=1"),
		Timeout: timeout, StartTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestClientRunsCases(t *testing.T) {
	b := helper(t, time.Minute)
	if b.Name() != "worker:fake" {
		t.Errorf("name %q", b.Name())
	}
	for _, d := range moe.DTypes() {
		c := testCase(t, d, true, true)
		r, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
		if err != nil {
			t.Fatal(err)
		}
		if !bitsEqual(r.Y, f32s(c.X)) || !bitsEqual(r.DB2, f32s(c.B2)) {
			t.Errorf("%s: result differs from the fake backend's", d)
		}
		if s, ok := poison.Of(r.DX[0]); !ok || s != gpu.BufDX {
			t.Errorf("%s: DX[0] = %#x, want the signature NaN of dX", d, math.Float32bits(r.DX[0]))
		}
	}
}

// A case that kills the worker costs exactly one CaseError; the next case runs in a new worker.
func TestClientRestartsAfterCrash(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   gpu.RunOptions
		fs     fault.Set
		detail string
	}{
		{"crash/fault-kills-worker", gpu.RunOptions{}, fault.Of(fault.Crash), "illegal address in kernel gather_rows"},
		{"crash/reported", gpu.RunOptions{PoisonSeed: seedReported}, 0, "CUDA_ERROR_ILLEGAL_ADDRESS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := helper(t, time.Minute)
			c := testCase(t, moe.BF16, false, false)
			var caseErrs int
			for i := 0; i < 3; i++ {
				o, fs := gpu.RunOptions{}, fault.Set(0)
				if i == 1 {
					o, fs = tc.opts, tc.fs
				}
				_, err := fault.Run(context.Background(), b, c, o, fs)
				if err == nil {
					continue
				}
				ce, ok := gpu.AsCaseError(err)
				if !ok || ce.Kind != gpu.Crashed || i != 1 {
					t.Fatalf("case %d: err = %v, want a crash CaseError on case 1 only", i, err)
				}
				if !strings.Contains(ce.Error(), tc.detail) {
					t.Errorf("case error %q does not carry the worker's detail %q", ce.Error(), tc.detail)
				}
				caseErrs++
			}
			if caseErrs != 1 {
				t.Fatalf("%d case errors, want 1", caseErrs)
			}
			if _, _, restarts, _ := Info(b); restarts != 1 {
				t.Errorf("restarts = %d, want 1", restarts)
			}
		})
	}
}

func TestClientTimesOutAndRestarts(t *testing.T) {
	b := helper(t, 2*time.Second) // generous: the case after the timeout restarts the worker under load
	c := testCase(t, moe.FP16, false, false)
	start := time.Now()
	_, err := b.Run(context.Background(), c, gpu.RunOptions{PoisonSeed: seedHang})
	ce, ok := gpu.AsCaseError(err)
	if !ok || ce.Kind != gpu.TimedOut {
		t.Fatalf("err = %v, want a TimedOut CaseError", err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("timeout took %v", el)
	}
	if _, err := b.Run(context.Background(), c, gpu.RunOptions{}); err != nil {
		t.Fatalf("case after the timeout: %v", err)
	}
}

func TestClientOOMKeepsWorker(t *testing.T) {
	b := helper(t, time.Minute)
	c := testCase(t, moe.FP32, false, false)
	_, err := b.Run(context.Background(), c, gpu.RunOptions{PoisonSeed: seedOOM})
	if ce, ok := gpu.AsCaseError(err); !ok || ce.Kind != gpu.OutOfMemory || !strings.Contains(ce.Detail, "h1") {
		t.Fatalf("err = %v, want an OutOfMemory CaseError naming h1", err)
	}
	if _, err := b.Run(context.Background(), c, gpu.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, restarts, _ := Info(b); restarts != 0 {
		t.Errorf("restarts = %d after an OOM, want 0", restarts)
	}
}

func TestClientCancel(t *testing.T) {
	b := helper(t, time.Minute)
	c := testCase(t, moe.BF16, false, false)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := b.Run(ctx, c, gpu.RunOptions{PoisonSeed: seedHang}); err != context.DeadlineExceeded {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if _, err := b.Run(context.Background(), c, gpu.RunOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsOtherVersions(t *testing.T) {
	for _, tc := range []struct {
		name, script, want string
	}{
		{"hello/none", "exit 0", "did not say hello"},
		{"hello/garbage", "echo garbage; sleep 5", "did not say hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{Command: []string{"sh", "-c", tc.script}, StartTimeout: 10 * time.Second})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A hello of a version after Version.
	var buf bytes.Buffer
	WriteFrame(&buf, &Frame{Header: Header{Type: TypeHello, Proto: Proto, Version: Version + 1}})
	f, err := os.CreateTemp(t.TempDir(), "hello")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(f, &buf)
	f.Close()
	_, err = New(Options{Command: []string{"sh", "-c", "cat " + f.Name() + "; sleep 5"}, StartTimeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("version %d", Version+1)) {
		t.Fatalf("err = %v, want a version complaint", err)
	}
}
