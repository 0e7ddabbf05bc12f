//go:build cuda

package cuda

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"gorgonia.org/cu"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
)

//go:embed kernels/*.ptx
var ptxFS embed.FS

// modules are the PTX files of kernels/, loaded at New.
var modules = []string{"routing", "elementwise", "gemm"}

// Options configure New. The zero value is valid: device 0, guard zones checked after every
// stage.
type Options struct {
	// Device is the CUDA device ordinal.
	Device int
	// NoGuardChecks skips the guard-zone check (and the synchronization) after each stage;
	// the zones are still checked once at the end of a run. Faster; locates less.
	NoGuardChecks bool
	// TileN forces the tensor-core GEMMs' column tile (128 or 256); 0 picks by N (256 when
	// N > 128). For benchmarks.
	TileN int
	// TileK forces the depth of the 256-column tiles (32: 4 stages; 64: 3 stages with
	// double-buffered fragments); 0 = 64. For benchmarks.
	TileK int
}

// Backend is the CUDA gpu.Backend. It is safe for use by one goroutine at a time; all CUDA
// work runs on its own locked OS thread.
type Backend struct {
	opts Options
	work chan func()
	quit chan struct{}

	// Owned by the locked thread.
	ctx     cu.CUContext
	dev     cu.Device
	fns     map[string]cu.Function
	pool    map[string]*devBuf
	runs    uint64
	lost    error // set after a device fault: the context is unusable
	devName string
	sm      string
}

// New creates a context on the device, loads the kernels and returns the backend.
func New(o Options) (*Backend, error) {
	b := &Backend{opts: o, work: make(chan func()), quit: make(chan struct{}), fns: map[string]cu.Function{}, pool: map[string]*devBuf{}}
	ready := make(chan error, 1)
	go b.loop(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return b, nil
}

// loop is the CUDA thread.
func (b *Backend) loop(ready chan<- error) {
	runtime.LockOSThread()
	if err := b.init(); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for {
		select {
		case f := <-b.work:
			f()
		case <-b.quit:
			b.freeAll()
			b.ctx.Destroy()
			return
		}
	}
}

// do runs f on the CUDA thread and returns its error.
func (b *Backend) do(f func() error) error {
	ch := make(chan error, 1)
	b.work <- func() { ch <- f() }
	return <-ch
}

func (b *Backend) init() error {
	n, err := cu.NumDevices()
	if err != nil {
		return fmt.Errorf("cuda: %w", err)
	}
	if b.opts.Device < 0 || b.opts.Device >= n {
		return fmt.Errorf("cuda: device %d outside [0, %d)", b.opts.Device, n)
	}
	if t := b.opts.TileN; t != 0 && t != 128 && t != 256 {
		return fmt.Errorf("cuda: column tile %d: want 128 or 256", t)
	}
	if t := b.opts.TileK; t != 0 && t != 32 && t != 64 {
		return fmt.Errorf("cuda: tile depth %d: want 32 or 64", t)
	}
	if b.dev, err = cu.GetDevice(b.opts.Device); err != nil {
		return fmt.Errorf("cuda: %w", err)
	}
	if b.ctx, err = b.dev.MakeContext(cu.SchedAuto); err != nil {
		return fmt.Errorf("cuda: make context: %w", err)
	}
	b.devName, _ = b.dev.Name()
	major, _ := b.dev.Attribute(cu.ComputeCapabilityMajor)
	minor, _ := b.dev.Attribute(cu.ComputeCapabilityMinor)
	b.sm = fmt.Sprintf("sm_%d%d", major, minor)
	if major < 8 {
		return fmt.Errorf("cuda: %s is %s; the kernels need sm_80 or newer (mma.sync bf16)", b.devName, b.sm)
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
			b.fns[name] = fn
		}
	}
	for name, fn := range b.fns {
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
	return fmt.Sprintf("%s (%s, driver CUDA %d.%d)", b.devName, b.sm, v/1000, (v%1000)/10)
}

// Close frees the device memory and destroys the context.
func (b *Backend) Close() error {
	select {
	case <-b.quit:
	default:
		close(b.quit)
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
	for _, f := range faults.List() {
		if _, ok := f.Info(); !ok {
			return nil, fmt.Errorf("cuda: unknown fault %d", f)
		}
	}
	if faults.Has(fault.StaleEmptyWgrad) { // no kernel flag for it yet: gpu/sim reproduces it
		return nil, &gpu.UnsupportedError{Reason: "fault stale-empty-wgrad: not implemented in the CUDA path (gpu/sim reproduces it)"}
	}
	if !o.Poison.Valid() {
		return nil, fmt.Errorf("cuda: unknown poison policy %d", o.Poison)
	}
	var res *gpu.Result
	err := b.do(func() error {
		if b.lost != nil {
			return &gpu.CaseError{Kind: gpu.Crashed, Detail: "CUDA context lost by an earlier fault", Err: b.lost}
		}
		r, err := b.runPath(c, runOpts{o, faults}, nil)
		res = r
		return err
	})
	return res, err
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
		b.freeAll()
		return &gpu.CaseError{Kind: gpu.OutOfMemory, Detail: "stage " + stage, Err: err}
	}
	b.lost = err
	return &gpu.CaseError{Kind: gpu.Crashed, Detail: fmt.Sprintf("CUDA error in stage %s", stage), Err: err}
}
