//go:build cuda

package cuda

import (
	"fmt"

	"gorgonia.org/cu"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
)

// staleWgrad is fault StaleEmptyWgrad's persistent weight-gradient buffer of one lane: the
// last faulty run's dW (every expert's block) and the block size it was written with. It is
// not in the run's buffer pool, so nothing poisons it between runs: it plays the allocator's
// recycled block that still holds the previous step's gradients.
type staleWgrad struct {
	base   cu.DevicePtr
	cap    int64 // bytes allocated
	blk, n int64 // bytes per expert block and bytes kept by the last faulty run (0: none)
}

// staleEmpty is fault StaleEmptyWgrad on the device, the same fault as gpu/sim's: a wgrad
// kernel that skips the experts without rows over a buffer still holding the previous faulty
// run's weight gradients. The kernel has written zeros for those experts; each of their blocks
// is replaced by the previous faulty run's block of that expert (when that run had the same
// block size and the expert), then the whole buffer is kept for the next faulty run. All on
// the lane's stream, after the kernel, so no synchronization is needed.
func (r *pathRun) staleEmpty(name string, blk int64) error {
	b, d := r.b, r.buf[name]
	if b.stale == nil {
		b.stale = map[string]*staleWgrad{}
	}
	prev := b.stale[name]
	if prev == nil {
		prev = &staleWgrad{}
		b.stale[name] = prev
	}
	for e, n := range r.emptyCounts() {
		if n != 0 || prev.blk != blk || prev.n < int64(e+1)*blk {
			continue
		}
		off := cu.DevicePtr(int64(e) * blk)
		b.calls.Add(1)
		if err := cu.MemcpyDtoDAsync(d.data+off, prev.base+off, blk, b.stream); err != nil {
			return fmt.Errorf("stale-empty-wgrad: copy %s[%d]: %w", name, e, err)
		}
	}
	size := r.E * blk
	if prev.cap < size {
		if prev.cap > 0 {
			// Wait for the copies above that read the old buffer before freeing it.
			if err := b.sync(); err != nil {
				return err
			}
			cu.MemFree(prev.base)
			prev.cap, prev.n = 0, 0
		}
		p, err := cu.MemAlloc(size)
		if err != nil {
			return fmt.Errorf("stale-empty-wgrad: allocate %d bytes: %w", size, err)
		}
		prev.base, prev.cap = p, size
	}
	b.calls.Add(1)
	if err := cu.MemcpyDtoDAsync(prev.base, d.data, size, b.stream); err != nil {
		return fmt.Errorf("stale-empty-wgrad: keep %s: %w", name, err)
	}
	prev.blk, prev.n = blk, size
	return nil
}

// emptyCounts returns the rows of each local expert as the routing stage counts them: the
// case's local routing (moe.Case keeps it equal to the EP map of its global ids, sentinels
// E excluded). Only StaleEmptyWgrad reads it; computed once per run.
func (r *pathRun) emptyCounts() []int32 {
	if r.counts == nil {
		r.counts = make([]int32, r.E)
		for _, id := range r.c.Routing.IDs {
			if int64(id) < r.E {
				r.counts[id]++
			}
		}
	}
	return r.counts
}

// freeStale frees the lane's kept weight gradients (with the pool: at Close or after a
// device fault).
func (b *Backend) freeStale() {
	for k, s := range b.stale {
		if s.cap > 0 {
			cu.MemFree(s.base)
		}
		delete(b.stale, k)
	}
}

// Forget drops what the lane carries from one case's runs into the next case's, so that its
// next run sees what a fresh lane would (gpu.Forgetter; the worker calls it on a forget
// request, which the client sends at the start of every trial):
//   - the pooled buffers' previous contents that PoisonStale reads: every buffer's next run
//     fills it with Huge, as a fresh allocation is filled (devBuf.lastN);
//   - fault StaleEmptyWgrad's kept weight gradients (the next faulty run finds none);
//   - the run count per case of fault NondeterministicSum (a case run again starts at its
//     first slot order).
//
// Device memory is kept (the pool, the kept gradients' allocation, the staging); nothing
// else of a run survives it (inputs, internal buffers, staging and guard zones are written by
// every run). No driver call is made, so it works on a lane whose context was lost (whose
// next run then fails as before). Forget on a closed lane does nothing.
func (b *Backend) Forget() error {
	f := func() {
		for _, d := range b.pool {
			d.lastN, d.lastDT = -1, -1
		}
		for _, s := range b.stale {
			s.blk, s.n = 0, 0
		}
		b.order = fault.RunOrder{}
	}
	done := make(chan struct{})
	select {
	case b.work <- func() { f(); close(done) }:
		<-done
	case <-b.quit: // closed (or closing): nothing runs on the lane any more
	case <-b.done:
	}
	return nil
}

var _ gpu.Forgetter = (*Backend)(nil)
