package sim

import (
	"github.com/moecheck/moecheck/internal/poison"
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

// take returns buffer b with n elements of dtype d, poisoned under policy p with seed.
//
// PoisonStale keeps the previous Run's values when the buffer had the same length and dtype
// (recycled memory); an element that is not finite there (a NaN a previous poison or fault
// left) gets the Huge value, because Stale is defined as finite values. On the first Run, or
// after the size or dtype changed, Stale fills Huge like poison.Fill.
func (p *pool) take(b gpu.Buffer, n int, d moe.DType, pol gpu.Poison, seed uint64) []float32 {
	buf := p.bufs[b]
	stale := pol == gpu.PoisonStale && p.used[b] && len(buf) == n && p.dtype[b] == d
	if cap(buf) < n {
		buf = make([]float32, n)
	}
	buf = buf[:n]
	p.bufs[b], p.dtype[b], p.used[b] = buf, d, true
	if !stale {
		poison.Fill(buf, pol, b, d, seed)
		return buf
	}
	base := seed ^ uint64(b)<<56 // poison.Fill's per-element draw
	for i, v := range buf {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			buf[i] = poison.Value(gpu.PoisonHuge, b, d, poison.SplitMix64(base+uint64(i)))
		}
	}
	return buf
}

// release drops every allocation.
func (p *pool) release() { *p = pool{} }
