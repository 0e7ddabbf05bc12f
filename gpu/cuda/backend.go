//go:build cuda

package cuda

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/rawcase"
	"github.com/moecheck/moecheck/moe"
)

//go:embed kernels/*.ptx
var ptxFS embed.FS

// modules are the PTX files of kernels/, loaded at New.
var modules = []string{"routing", "elementwise", "gemm"}

// Options configure New and NewLanes. The zero value is valid and the fast default: device
// 0, every guard zone checked once at the end of every run (a damaged zone makes the lane
// re-run the case with a check after every stage to name the stage), no synchronization
// between stages.
type Options struct {
	// Device is the CUDA device ordinal.
	Device int
	// StageGuardChecks checks every guard zone after every stage as well (one more launch per
	// stage), so that damage names its stage without a re-run. For attribution and for
	// kernels under development; slower.
	StageGuardChecks bool
	// StageSync synchronizes the lane's stream after every stage, so that a device fault
	// (an illegal address) is named with the stage that raised it. Without it the stages
	// run back to back and a fault is seen at the end of the run ("stage unknown"). Slower.
	StageSync bool
	// TileN forces the tensor-core GEMMs' column tile (128 or 256); 0 picks by N (256 when
	// N > 128). For benchmarks.
	TileN int
	// TileK forces the depth of the 256-column tiles (32: 4 stages; 64: 3 stages with
	// double-buffered fragments); 0 = 64. For benchmarks.
	TileK int
	// Trace, when non-nil, receives a timeline of each run (package internal/phase): the
	// setup (allocation, uploads, fills), queueing the stages, queueing the pack and the
	// download, and the wait for the stream (the kernels and copies themselves). Nil writes
	// nothing.
	Trace io.Writer
}

// shared is the CUDA state the lanes of one NewLanes call share: the device's primary
// context (one per process and device, so the lanes' kernels run side by side instead of
// time-slicing as separate contexts do), the kernels loaded once, and whether a fault lost
// the context (then every lane is unusable).
type shared struct {
	dev     cu.Device
	ctx     cu.CUContext
	fns     map[string]cu.Function // read-only after init
	devName string
	sm      string

	mu   sync.Mutex
	lost error // set after a device fault in any lane
	open int   // lanes not yet closed; the last one releases the primary context
}

func (s *shared) lostErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

func (s *shared) setLost(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost == nil {
		s.lost = err
	}
}

// Backend is the CUDA gpu.Backend: one lane. It is safe for use by one goroutine at a time;
// all its CUDA work runs on its own locked OS thread, with the shared context current, on its
// own non-blocking stream, with its own buffer pool. Lanes of one NewLanes call may be used
// by different goroutines at once.
type Backend struct {
	opts Options
	sh   *shared
	work chan func()
	quit chan struct{}
	done chan struct{} // closed when the lane's thread has released its resources

	// Owned by the locked thread.
	stream cu.Stream
	pool   map[string]*devBuf
	order  fault.RunOrder         // each case's runs so far, for NondeterministicSum's order
	up     pinned                 // page-locked staging of the uploads, reused across runs
	down   pinned                 // page-locked staging of the downloads
	stale  map[string]*staleWgrad // fault StaleEmptyWgrad's kept weight gradients (stale.go)
	argv   unsafe.Pointer         // launch's argument values: maxArgs u64 in C memory

	calls atomic.Uint64 // driver calls queued or made by the lane's runs (DriverCalls)
}

// DriverCalls returns how many CUDA driver calls the lane's runs made so far: launches,
// copies, memsets and stream synchronizations (not allocations, which the pool makes rare).
// The difference over one run is that run's count (docs/gpu.md, "Driver calls per run").
func (b *Backend) DriverCalls() uint64 { return b.calls.Load() }

// New returns one lane (NewLanes(o, 1)).
func New(o Options) (*Backend, error) {
	bs, err := NewLanes(o, 1)
	if err != nil {
		return nil, err
	}
	return bs[0], nil
}

// MaxLanes bounds NewLanes: each lane is an OS thread, a stream and a buffer pool.
const MaxLanes = 256

// NewLanes retains the device's primary context, loads the kernels once, and returns n
// lanes that share them, each with its own locked OS thread, non-blocking stream and buffer
// pool. Every launch, memset, copy and synchronization of a lane is on its stream, so the
// lanes' runs overlap on the GPU. Close every lane; the last Close releases the context.
func NewLanes(o Options, n int) ([]*Backend, error) {
	if n < 1 || n > MaxLanes {
		return nil, fmt.Errorf("cuda: %d lanes: want between 1 and %d", n, MaxLanes)
	}
	sh := &shared{fns: map[string]cu.Function{}}
	bs := make([]*Backend, 0, n)
	for k := 0; k < n; k++ {
		b := &Backend{opts: o, sh: sh, work: make(chan func()), quit: make(chan struct{}), done: make(chan struct{}), pool: map[string]*devBuf{}}
		ready := make(chan error, 1)
		first := 0
		if k == 0 {
			first = n
		}
		go b.loop(ready, first)
		if err := <-ready; err != nil {
			for _, p := range bs {
				p.Close()
			}
			return nil, err
		}
		bs = append(bs, b)
	}
	return bs, nil
}

// loop is a lane's CUDA thread; the first lane (lanes > 0: the number of lanes) also
// initializes the shared state.
func (b *Backend) loop(ready chan<- error, lanes int) {
	defer close(b.done)
	runtime.LockOSThread()
	// The thread stays locked to the end: a thread with a CUDA context current must not
	// run other goroutines; the runtime ends it when this goroutine returns.
	if lanes > 0 {
		if err := b.sh.init(b.opts, lanes); err != nil {
			ready <- err
			return
		}
	}
	b.sh.mu.Lock()
	b.sh.open++
	b.sh.mu.Unlock()
	defer b.release()
	if err := cu.SetCurrentContext(b.sh.ctx); err != nil {
		ready <- fmt.Errorf("cuda: make the context current: %w", err)
		return
	}
	s, err := cu.MakeStream(cu.NonBlocking)
	if err != nil {
		ready <- fmt.Errorf("cuda: create a stream: %w", err)
		return
	}
	b.stream = s
	ready <- nil
	for {
		select {
		case f := <-b.work:
			f()
		case <-b.quit:
			b.stream.Synchronize()
			b.freeAll()
			b.up.free()
			b.down.free()
			b.freeArgs()
			b.stream.Destroy()
			return
		}
	}
}

// release drops the lane's hold on the shared context; the last lane releases it.
func (b *Backend) release() {
	b.sh.mu.Lock()
	defer b.sh.mu.Unlock()
	b.sh.open--
	if b.sh.open == 0 {
		b.sh.dev.ReleasePrimaryCtx()
	}
}

// do runs f on the CUDA thread and returns its error.
func (b *Backend) do(f func() error) error {
	ch := make(chan error, 1)
	b.work <- func() { ch <- f() }
	return <-ch
}

// init retains the primary context, makes it current on the calling (locked) thread and
// loads the kernels. With several lanes the context blocks on synchronization instead of
// spinning (CU_CTX_SCHED_BLOCKING_SYNC): a lane waits for its stream once per run, and a
// dozen spinning threads would take the cores the client's oracle needs.
func (s *shared) init(o Options, lanes int) error {
	n, err := cu.NumDevices()
	if err != nil {
		return fmt.Errorf("cuda: %w", err)
	}
	if o.Device < 0 || o.Device >= n {
		return fmt.Errorf("cuda: device %d outside [0, %d)", o.Device, n)
	}
	if t := o.TileN; t != 0 && t != 128 && t != 256 {
		return fmt.Errorf("cuda: column tile %d: want 128 or 256", t)
	}
	if t := o.TileK; t != 0 && t != 32 && t != 64 {
		return fmt.Errorf("cuda: tile depth %d: want 32 or 64", t)
	}
	if s.dev, err = cu.GetDevice(o.Device); err != nil {
		return fmt.Errorf("cuda: %w", err)
	}
	if lanes > 1 {
		// Fails only when the primary context is already active (not in a worker); the
		// driver's default then stays.
		_ = s.dev.SetPrimaryCtxFlags(cu.SchedBlockingSync)
	}
	if s.ctx, err = s.dev.RetainPrimaryCtx(); err != nil {
		return fmt.Errorf("cuda: retain the primary context: %w", err)
	}
	if err := cu.SetCurrentContext(s.ctx); err != nil {
		s.dev.ReleasePrimaryCtx()
		return fmt.Errorf("cuda: make the context current: %w", err)
	}
	if err := s.load(); err != nil {
		s.dev.ReleasePrimaryCtx()
		return err
	}
	return nil
}

// load checks the device and loads the PTX modules (JIT once per process).
func (s *shared) load() error {
	s.devName, _ = s.dev.Name()
	major, _ := s.dev.Attribute(cu.ComputeCapabilityMajor)
	minor, _ := s.dev.Attribute(cu.ComputeCapabilityMinor)
	s.sm = fmt.Sprintf("sm_%d%d", major, minor)
	if major < 8 {
		return fmt.Errorf("cuda: %s is %s; the kernels need sm_80 or newer (mma.sync bf16)", s.devName, s.sm)
	}
	for _, m := range modules {
		src, err := ptxFS.ReadFile("kernels/" + m + ".ptx")
		if err != nil {
			return fmt.Errorf("cuda: %w", err)
		}
		mod, err := cu.LoadData(string(src))
		if err != nil {
			return fmt.Errorf("cuda: load %s.ptx: %w", m, err)
		}
		for _, name := range kernelNames(string(src)) {
			fn, err := mod.Function(name)
			if err != nil {
				return fmt.Errorf("cuda: kernel %s: %w", name, err)
			}
			s.fns[name] = fn
		}
	}
	for name, fn := range s.fns {
		if strings.HasPrefix(name, "tc_") {
			smem := tcSmemBytes(128, 32)
			switch {
			case strings.HasSuffix(name, "_n256"):
				smem = tcSmemBytes(256, 32)
			case strings.HasSuffix(name, "_n256k64"):
				smem = tcSmemBytes(256, 64)
			}
			if err := setMaxDynamicSmem(fn, smem); err != nil {
				return fmt.Errorf("cuda: %s: shared memory %d bytes: %w", name, smem, err)
			}
		}
	}
	return nil
}

// kernelNames lists the .entry names of a PTX module.
func kernelNames(ptx string) []string {
	var names []string
	for _, line := range strings.Split(ptx, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, ".visible .entry "); ok {
			if i := strings.IndexByte(rest, '('); i > 0 {
				names = append(names, rest[:i])
			}
		}
	}
	return names
}

// Name returns "cuda".
func (b *Backend) Name() string { return "cuda" }

// Device describes the GPU: name and compute capability.
func (b *Backend) Device() string {
	v := cu.Version()
	return fmt.Sprintf("%s (%s, driver CUDA %d.%d)", b.sh.devName, b.sh.sm, v/1000, (v%1000)/10)
}

// closeWait bounds how long Close waits for a lane's thread (busy in a hung kernel, it
// never ends; the process is about to exit then).
const closeWait = 5 * time.Second

// Close frees the lane's device memory and stream, waiting up to closeWait for its thread to
// end; the last lane closed releases the primary context. Close is idempotent.
func (b *Backend) Close() error {
	select {
	case <-b.quit:
	default:
		close(b.quit)
	}
	select {
	case <-b.done:
	case <-time.After(closeWait):
		return errors.New("cuda: lane busy; not closed")
	}
	return nil
}

// Run executes the path forward and backward on c (docs/path.md). A device fault returns a
// Crashed *gpu.CaseError and leaves the backend unusable (the process must exit); an
// allocation failure returns an OutOfMemory *gpu.CaseError and frees the pool.
func (b *Backend) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	return b.RunFaults(ctx, c, o, 0)
}

// RunFaults is Run with faults of the harness's catalog switched on in the kernels (it
// implements fault.Runner).
func (b *Backend) RunFaults(ctx context.Context, c *moe.Case, o gpu.RunOptions, faults fault.Set) (*gpu.Result, error) {
	if err := c.Validate(moe.Limits{}); err != nil {
		return nil, err
	}
	return b.run(c, o, faults)
}

// RunBits is RunFaults on a case given as its bits, validated on them (the worker validates
// every request on its bits: rawcase.Validate, not repeated here): the inputs are uploaded as they came and the result is the downloaded bits,
// valid until the lane's next run or Close. It implements rawcase.Runner.
func (b *Backend) RunBits(_ context.Context, k rawcase.Checked, o gpu.RunOptions, faults fault.Set) (*rawcase.Result, error) {
	if k.Case() == nil {
		return nil, errors.New("cuda: no case")
	}
	var res *rawcase.Result
	err := b.runWith(k.Meta(), runOpts{RunOptions: o, faults: faults, raw: k.Case()}, func(r *pathRun) { res = r.resultBits() })
	return res, err
}

var _ rawcase.Runner = (*Backend)(nil)

// run is RunFaults after the case's validation.
func (b *Backend) run(c *moe.Case, o gpu.RunOptions, faults fault.Set) (*gpu.Result, error) {
	var res *gpu.Result
	err := b.runWith(c, runOpts{RunOptions: o, faults: faults}, func(r *pathRun) { res = r.result() })
	return res, err
}

// runWith runs c (with o.raw: the case's routing, its bits in o.raw) on the lane's thread and
// hands the finished run to done there.
func (b *Backend) runWith(c *moe.Case, o runOpts, done func(*pathRun)) error {
	faults := o.faults
	for _, f := range faults.List() {
		if _, ok := f.Info(); !ok {
			return fmt.Errorf("cuda: unknown fault %d", f)
		}
	}
	if !o.Poison.Valid() {
		return fmt.Errorf("cuda: unknown poison policy %d", o.Poison)
	}
	return b.do(func() error {
		if lost := b.sh.lostErr(); lost != nil {
			return &gpu.CaseError{Kind: gpu.Crashed, Detail: "CUDA context lost by an earlier fault", Err: lost}
		}
		r, err := b.runPath(c, o, nil)
		if err == nil {
			done(r)
		}
		return err
	})
}

// fail classifies a CUDA error of stage: out of memory is a case error the backend survives;
// anything else during a run loses the context (a kernel fault).
func (b *Backend) fail(stage string, err error) error {
	if err == nil {
		return nil
	}
	var ce *gpu.CaseError
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, cu.OutOfMemory) {
		b.stream.Synchronize() // queued copies may still read the staging buffer
		b.freeAll()
		return &gpu.CaseError{Kind: gpu.OutOfMemory, Detail: "stage " + stage, Err: err}
	}
	b.sh.setLost(err)
	return &gpu.CaseError{Kind: gpu.Crashed, Detail: fmt.Sprintf("CUDA error in stage %s", stage), Err: err}
}
