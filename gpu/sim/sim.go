package sim

import (
	"context"
	"errors"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"sync"
	"unsafe"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Options configure a Backend. The zero value is valid: cases are checked against
// moe.DefaultLimits().
type Options struct {
	// Limits bounds the cases Run accepts (c.Validate(Limits)); zero fields mean the
	// moe.DefaultLimits() values.
	Limits moe.Limits
	// Workers is the number of goroutines one Run may split its loops over; 0 means
	// runtime.GOMAXPROCS(0). Several Backends running at once (moecheck --jobs N) divide the
	// cores between them: each Run then stays on fewer goroutines and pays no hand-offs for
	// cores that the other jobs keep busy. Results are bitwise the same for every value.
	Workers int
}

// Backend is the Go model of the GPU path. It implements gpu.Backend with the name
// "sim". Its buffers persist from one Run to the next (PoisonStale reads them); Runs on one
// Backend are serialized.
type Backend struct {
	opts   Options
	mu     sync.Mutex
	closed bool
	pool   pool
	st     state
	order  fault.RunOrder // each case's runs so far, for NondeterministicSum's order
	// workers is the number of goroutines a Run's stages may use (0: runtime.GOMAXPROCS(0))
	// and minWork the least work of one range (0: minParWork). Tests set workers 1 for a
	// single-goroutine run, and minWork 1 to split even the smallest cases.
	workers, minWork int
	// noReuse (tests) converts the inputs every Run, allocates new stage buffers and
	// computes every stage: the Backend as it was before loaded, Recycle and the memo.
	// noMemo (tests) computes every stage (memo.go), with loaded and Recycle.
	noReuse, noMemo bool
}

var _ gpu.Backend = (*Backend)(nil)

// New returns a sim Backend.
func New(opts Options) *Backend { return &Backend{opts: opts, workers: opts.Workers} }

// Name returns "sim".
func (b *Backend) Name() string { return "sim" }

// Forget drops what the Backend carries from one case's runs into the next case's: fault
// StaleEmptyWgrad's weight-gradient buffers, the previous values PoisonStale would read (its
// next Run of each buffer fills Huge, as on a fresh Backend), the run count per case of
// fault NondeterministicSum (a case run again starts at its first slot order), and the stage
// memo (memo.go: pure reuse, but nothing of one case is kept for the next). Memory is kept.
// The property runner calls it at the start of every trial (package props, through
// gpu.Forgetter), so that what a job's instance ran before does not leak into a trial's runs:
// verdicts and reproduce lines do not depend on --jobs or on the case order, and the runs
// within a trial (the history property's pair, ep-split-sum's ranks) still share their
// state. It never fails.
func (b *Backend) Forget() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.prevDW1, b.st.prevDW2 = staleWgrad{}, staleWgrad{}
	b.pool.used = [gpu.BufDB2 + 1]bool{}
	b.order = fault.RunOrder{}
	b.st.memo.drop()
	return nil
}

var _ gpu.Forgetter = (*Backend)(nil)

// Close releases the buffers; Run after Close returns an error.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.pool.release()
	b.st = state{}
	return nil
}

// Recycle hands back the stage buffers of r, a Result of this Backend's Run with stages that
// the caller no longer reads: the next Runs take them instead of allocating and zeroing new
// ones (a Run lends its stage buffers to its Result, result.go). r.Stages is set to nil; the
// outputs stay r's. Recycling a Result whose stages are still read elsewhere is a caller
// bug (the next Run overwrites them). Safe to skip: an unrecycled Result is garbage
// collected as before.
func (b *Backend) Recycle(r *gpu.Result) {
	if r == nil || r.Stages == nil {
		return
	}
	st := r.Stages
	r.Stages = nil
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.noReuse {
		return
	}
	for _, s := range []struct {
		b gpu.Buffer
		v []float32
	}{{gpu.BufXs, st.Xs}, {gpu.BufH1, st.H1}, {gpu.BufAct, st.Act}, {gpu.BufH2, st.H2}, {gpu.BufO, st.O},
		{gpu.BufDO, st.DO}, {gpu.BufDH2, st.DH2}, {gpu.BufDAct, st.DAct}, {gpu.BufDH1, st.DH1}, {gpu.BufDXs, st.DXs}} {
		if len(s.v) > 0 {
			b.pool.recycle(s.b, s.v)
		}
	}
}

// errClosed is returned by Run after Close.
var errClosed = errors.New("sim: Run on a closed backend")

// Run executes the path forward and backward on c (docs/path.md) with opts' poison policy
// and stage capture. It returns an error for a case that does not validate against the
// Backend's limits and when ctx is done (checked between stages). Run does not modify c.
func (b *Backend) Run(ctx context.Context, c *moe.Case, opts gpu.RunOptions) (*gpu.Result, error) {
	return b.RunFaults(ctx, c, opts, 0)
}

// RunFaults is Run with faults of the harness's catalog switched on (it implements
// fault.Runner; faults are not part of the backend contract). A fault set the sim cannot
// reproduce is an error; under fault Crash it returns a *gpu.CaseError of kind gpu.Crashed.
func (b *Backend) RunFaults(ctx context.Context, c *moe.Case, opts gpu.RunOptions, faults fault.Set) (*gpu.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	f, err := decodeFaults(faults)
	if err != nil {
		return nil, err
	}
	if err := check(c, b.opts.Limits); err != nil {
		return nil, fmt.Errorf("sim: invalid case: %w", err)
	}
	if !opts.Poison.Valid() {
		return nil, fmt.Errorf("sim: unknown poison policy %s", opts.Poison)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	st := &b.st
	st.run = 0
	if f.nondeterministicSum {
		st.run = b.order.Next(fault.CaseKey(c))
	}
	st.par = newSplit(b.workers, b.minWork)
	if b.noReuse {
		st.in.drop()
	}
	st.memo.off = b.noReuse || b.noMemo
	st.memo.begin(uintptr(unsafe.Pointer(unsafe.SliceData(c.X))))
	if err := st.load(c); err != nil {
		if verr := c.Validate(b.opts.Limits); verr != nil {
			err = verr
		}
		return nil, fmt.Errorf("sim: invalid case: %w", err)
	}
	if f.crash { // fault Crash: the kernel faults before producing anything
		return nil, &gpu.CaseError{Kind: gpu.Crashed, Detail: "simulated illegal address"}
	}
	cfg := c.Config
	st.cfg, st.f = cfg, f
	st.route(c, f)
	st.takeBuffers(&b.pool, cfg, opts)
	st.forward()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	st.backward()
	return st.result(cfg, opts.Stages, &b.pool), nil
}
