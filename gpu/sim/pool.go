package sim

import (
	"math"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// pool holds one float32 allocation per gpu.Buffer, reused across Runs: it is the sim's
// device memory. Stale poisoning reads what the previous Run left in it.
type pool struct {
	bufs  [gpu.BufDB2 + 1][]float32
	dtype [gpu.BufDB2 + 1]moe.DType
	used  [gpu.BufDB2 + 1]bool // the buffer holds a previous Run's values
}

// take returns buffer b with n elements of dtype d, poisoned under policy p with seed, the
// fill split over w goroutines (parFor).
//
// PoisonStale keeps the previous Run's values when the buffer had the same length and dtype
// (recycled memory); an element that is not finite there (a NaN a previous poison or fault
// left) gets the Huge value, because Stale is defined as finite values. On the first Run, or
// after the size or dtype changed, Stale fills Huge like gpu.Fill.
func (p *pool) take(b gpu.Buffer, n int, d moe.DType, pol gpu.Poison, seed uint64, sp split) []float32 {
	buf := p.bufs[b]
	stale := pol == gpu.PoisonStale && p.used[b] && len(buf) == n && p.dtype[b] == d
	if cap(buf) < n {
		buf = make([]float32, n)
	}
	buf = buf[:n]
	p.bufs[b], p.dtype[b], p.used[b] = buf, d, true
	base := seed ^ uint64(b)<<56 // gpu.Fill's per-element draw
	if !stale {
		parFor(sp, n, 4, func(lo, hi int) {
			if pol == gpu.PoisonHuge || pol == gpu.PoisonStale {
				// gpu.Fill draws element i from index i: a range draws from its own indices.
				for i := lo; i < hi; i++ {
					buf[i] = gpu.PoisonValue(pol, b, d, gpu.SplitMix64(base+uint64(i)))
				}
				return
			}
			gpu.Fill(buf[lo:hi], pol, b, d, seed) // the other policies do not depend on i
		})
		return buf
	}
	parFor(sp, n, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if v := buf[i]; math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				buf[i] = gpu.PoisonValue(gpu.PoisonHuge, b, d, gpu.SplitMix64(base+uint64(i)))
			}
		}
	})
	return buf
}

// release drops every allocation.
func (p *pool) release() { *p = pool{} }
