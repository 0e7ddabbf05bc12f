package sim

import (
	"math"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/poison"
	"github.com/moecheck/moecheck/moe"
)

// pool holds one float32 allocation per gpu.Buffer, reused across Runs: it is the sim's
// device memory. Stale poisoning reads what the previous Run left in it.
type pool struct {
	bufs  [gpu.BufDB2 + 1][]float32
	dtype [gpu.BufDB2 + 1]moe.DType
	used  [gpu.BufDB2 + 1]bool // the buffer holds a previous Run's values
	// lent: the buffer became a Result's stage (result.go hands stage buffers over instead
	// of copying them, halving a large case's memory); the next take allocates a new one,
	// with the lent one's values where Stale reads them, so Runs see what they saw before.
	lent [gpu.BufDB2 + 1]bool
	// spare: a stage buffer a Result handed back (Backend.Recycle), taken in place of a new
	// allocation where the buffer in use is lent: a Run with stages then costs the next Run
	// no fresh, zeroed memory. It is kept until the buffer's next take only.
	spare [gpu.BufDB2 + 1][]float32
}

// take returns buffer b with n elements of dtype d, poisoned under policy p with seed, the
// fill split over w goroutines (parFor).
//
// PoisonStale keeps the previous Run's values when the buffer had the same length and dtype
// (recycled memory); an element that is not finite there (a NaN a previous poison or fault
// left) gets the Huge value, because Stale is defined as finite values. On the first Run, or
// after the size or dtype changed, Stale fills Huge like poison.Fill.
func (p *pool) take(b gpu.Buffer, n int, d moe.DType, pol gpu.Poison, seed uint64, sp split) []float32 {
	buf := p.bufs[b]
	stale := pol == gpu.PoisonStale && p.used[b] && len(buf) == n && p.dtype[b] == d
	switch {
	case p.lent[b]:
		old := buf
		if s := p.spare[b]; cap(s) >= n {
			buf = s[:n] // every element is written below (fill, or copy and stale)
		} else {
			buf = make([]float32, n)
		}
		if stale {
			copy(buf, old) // the previous Run's values, as if the memory were recycled
		}
	case cap(buf) < n:
		buf = make([]float32, n)
	}
	p.spare[b] = nil
	buf = buf[:n]
	p.bufs[b], p.dtype[b], p.used[b], p.lent[b] = buf, d, true, false
	fa := fillArgs{buf: buf, b: b, d: d, pol: pol, seed: seed}
	if !stale {
		parFor(sp, n, 4, fa, fillArgs.fill)
	} else {
		parFor(sp, n, 1, fa, fillArgs.stale)
	}
	return buf
}

// fillArgs are the operands of take's poisoning, done by ranges.
type fillArgs struct {
	buf  []float32
	b    gpu.Buffer
	d    moe.DType
	pol  gpu.Poison
	seed uint64
}

// fill is poison.Fill on buf[lo:hi]: elements get the values poison.Fill(buf, ...) gives them.
func (a fillArgs) fill(lo, hi int) {
	poison.FillRange(a.buf[lo:hi], lo, a.pol, a.b, a.d, a.seed)
}

// stale is PoisonStale's pass on recycled memory over buf[lo:hi]: a non-finite element gets
// the Huge value (poison.Fill's per-element draw).
func (a fillArgs) stale(lo, hi int) {
	base := a.seed ^ uint64(a.b)<<56
	for i := lo; i < hi; i++ {
		if math.Float32bits(a.buf[i])&0x7f800000 == 0x7f800000 { // NaN or ±Inf
			a.buf[i] = poison.Value(gpu.PoisonHuge, a.b, a.d, poison.SplitMix64(base+uint64(i)))
		}
	}
}

// recycle keeps v, a stage buffer b lent to a Result that is no longer used, as b's spare
// (the larger one where there is already one).
func (p *pool) recycle(b gpu.Buffer, v []float32) {
	if cap(v) > cap(p.spare[b]) {
		p.spare[b] = v[:cap(v)]
	}
}

// release drops every allocation.
func (p *pool) release() { *p = pool{} }
