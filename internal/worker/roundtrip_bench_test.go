package worker

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
)

// benchEnv names the backend the test binary serves as a round-trip benchmark's worker
// (TestMain): "float" (echoFloat) or "bits" (echoBits, where the package has them).
const benchEnv = "MOECHECK_WORKER_BENCH"

// echoDevice stands for a device that holds storage bits, doing the host work of gpu/cuda's
// lane around a run and nothing else: the inputs written to an upload buffer, the result
// (the inputs' bits: Y = X, DX = DY, DW1 = W1, DW2 = W2, DB1 = B1, DB2 = B2, DRW = the
// routing weights; each stage filled from X) copied to a download buffer, both reused.
type echoDevice struct {
	up, down []byte
}

func (e *echoDevice) grow(b *[]byte, n int) []byte {
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	return (*b)[:n]
}

// echoFloat is echoDevice behind the float interface, as gpu/cuda's Run is: the case's
// values encoded to bits for the upload, the downloads decoded to float32.
type echoFloat struct {
	fakeBackend
	dev *echoDevice
}

func (b echoFloat) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	return b.RunFaults(ctx, c, o, 0)
}

func (b echoFloat) RunFaults(_ context.Context, c *moe.Case, o gpu.RunOptions, _ fault.Set) (*gpu.Result, error) {
	if err := c.Validate(moe.Limits{}); err != nil {
		return nil, err
	}
	return b.run(c, o), nil
}

func (b echoFloat) run(c *moe.Case, o gpu.RunOptions) *gpu.Result {
	d := c.DType
	w := d.Bits() / 8
	ts := [][]float64{c.X, c.DY, c.W1, c.W2, c.B1, c.B2, c.Routing.Weights}
	n := 0
	for _, v := range ts {
		n += len(v) * w
	}
	up := b.dev.grow(&b.dev.up, n)
	at := 0
	for _, v := range ts {
		d.PutBits(up[at:at+len(v)*w], v)
		at += len(v) * w
	}
	down := b.dev.grow(&b.dev.down, n+stageBytes(c.Config, o))
	copy(down, up)
	dec := func(from, k int) []float32 {
		if k == 0 {
			return nil
		}
		v := make([]float32, k)
		d.Float32s(v, down[from*w:(from+k)*w])
		return v
	}
	r := &gpu.Result{}
	at = 0
	for i, t := range []moe.Tensor{moe.TensorY, moe.TensorDX, moe.TensorDW1, moe.TensorDW2, moe.TensorDB1, moe.TensorDB2, moe.TensorDRW} {
		r.SetTensor(t, dec(at, len(ts[i])))
		at += len(ts[i])
	}
	if o.Stages {
		r.Stages = &gpu.Stages{Perm: make([]int32, c.S()), Offsets: make([]int32, c.E)}
		for _, t := range moe.StageTensors() {
			k := c.Len(t)
			for i := 0; i < k; i += len(c.X) {
				copy(down[(at+i)*w:(at+k)*w], up[:len(c.X)*w])
			}
			r.SetTensor(t, dec(at, k))
			at += k
		}
	}
	return r
}

// stageBytes is the bytes of a run's stage tensors (0 without stages).
func stageBytes(cfg moe.Config, o gpu.RunOptions) int {
	if !o.Stages {
		return 0
	}
	n := 0
	for _, t := range moe.StageTensors() {
		n += cfg.Len(t)
	}
	return n * (cfg.DType.Bits() / 8)
}

// serveBench serves the round-trip benchmark's backend on stdin/stdout (with a CPU profile
// written to $MOECHECK_WORKER_BENCH_PROFILE when set).
func serveBench(mode string) {
	var b gpu.Backend = echoFloat{dev: &echoDevice{}}
	if mode != "float" {
		if b = benchBits(mode); b == nil {
			fmt.Fprintf(os.Stderr, "unknown bench backend %q\n", mode)
			os.Exit(2)
		}
	}
	if path := os.Getenv(benchEnv + "_PROFILE"); path != "" { // the worker's CPU profile
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := Serve(os.Stdin, os.Stdout, b, ServeOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

// benchShapes are shapes of the default check distribution (props.GenOptions): the common
// small ones, a large-T one, a long-expert one and a wide one.
var benchShapes = []struct {
	name string
	cfg  moe.Config
}{
	{"small", moe.Config{T: 16, H: 32, I: 24, E: 6, K: 3, DType: moe.BF16}},
	{"small-fp16-bias-ep", moe.Config{T: 24, H: 40, I: 40, E: 8, K: 8, DType: moe.FP16, Bias: true, EP: moe.EP{World: 4, Rank: 1}}},
	{"long", moe.Config{T: 400, H: 16, I: 16, E: 4, K: 2, DType: moe.BF16}},
	{"wide", moe.Config{T: 24, H: 320, I: 320, E: 8, K: 4, DType: moe.BF16}},
}

// runsPerCase is how many runs a trial makes of one case (a check's properties: the base
// runs, the policies of poison-invariance, deterministic, history, ...).
const runsPerCase = 12

// BenchmarkRoundTrip runs cases through a worker process (the test binary serving
// echoFloat, the float interface, or echoBits, a rawcase.Runner, when the package has it):
// a case of each shape is run runsPerCase times with the poison policies in turn, every
// other run with stages, then the next case (a fresh *moe.Case of the same values). The
// backend does no arithmetic, so the times are the protocol's and the conversions' on both
// sides. Metrics: runs/s, client-µs/run (this process's CPU), worker-µs/run (the worker's
// CPU, its start included).
func BenchmarkRoundTrip(b *testing.B) {
	for _, sh := range benchShapes {
		for _, mode := range []string{"float", "bits"} {
			if mode != "float" && benchBits(mode) == nil {
				continue
			}
			b.Run(fmt.Sprintf("shape=%s/backend=%s", sh.name, mode), func(b *testing.B) {
				r, g, err := moe.RandomGlobalRouting(sh.cfg, 5)
				if err != nil {
					b.Fatal(err)
				}
				base, err := moe.Generate(sh.cfg, r, 6, moe.Normal)
				if err != nil {
					b.Fatal(err)
				}
				if sh.cfg.EP.WorldSize() > 1 {
					base.Global = g
				}
				cases := []*moe.Case{base.Clone(), base.Clone(), base.Clone()}
				wb, err := New(Options{Command: []string{os.Args[0], "-test.run=^$"}, Env: append(os.Environ(), benchEnv+"="+mode),
					Timeout: time.Minute, StartTimeout: 30 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				var self0, kids0 syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
				syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids0)
				polices := gpu.Poisons()
				i := 0
				for b.Loop() {
					c := cases[(i/runsPerCase)%len(cases)]
					o := gpu.RunOptions{Poison: polices[i%len(polices)], PoisonSeed: uint64(i), Stages: i%2 == 0}
					res, err := wb.Run(context.Background(), c, o)
					if err != nil {
						b.Fatal(err)
					}
					if len(res.Y) != c.LenX() {
						b.Fatalf("y of %d values", len(res.Y))
					}
					i++
				}
				el := b.Elapsed()
				if err := wb.Close(); err != nil {
					b.Fatal(err)
				}
				var self1, kids1 syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
				syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids1)
				cpu := func(r0, r1 syscall.Rusage) float64 {
					return float64(r1.Utime.Nano()-r0.Utime.Nano()+r1.Stime.Nano()-r0.Stime.Nano()) / 1e3
				}
				b.ReportMetric(float64(i)/el.Seconds(), "runs/s")
				b.ReportMetric(cpu(self0, self1)/float64(i), "client-µs/run")
				b.ReportMetric(cpu(kids0, kids1)/float64(i), "worker-µs/run")
			})
		}
	}
}
