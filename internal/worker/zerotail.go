package worker

import (
	"math"

	"github.com/moecheck/moecheck/internal/hugemem"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/moe"
)

// Zero tails (protocol, any version): a worker that declares zero_tails in its hello, asked
// with zero_tails in a run request, may leave out the trailing zero bytes of a result's float
// tensors: the tensor's header then gives its whole size (TensorHeader.Size) and the payload
// holds its first Bytes bytes; the rest are zero bits (+0 in every float dtype). Rows of the
// sentinel tail that a path leaves at +0 (the gathered xs of a rank's foreign slots, and the
// stages computed from them) are most of a large expert-parallel rank's stages — 81 % of the
// 4.4 GB of a Qwen3-30B-A3B EP-8 rank at T = 16,384 — and crossed the pipe only to be decoded
// into zeros. The encoding is lossless: the client's float32 slices are fresh, zero memory,
// so the values left out are exactly +0, as sent (TestZeroTailsSameResult).

// zeroTailMin is the smallest tensor, in bytes, whose zero tail is left out: below it the
// scan and the extra header field gain nothing.
const zeroTailMin = 1 << 20

// elideZeroTails lays ts out again with the trailing zero elements of every float
// tensor of at least zeroTailMin bytes left out (hdr.Size set to its whole size), and
// returns the payload's new size.
func elideZeroTails(ts []wireTensor) (size int64) {
	for i := range ts {
		t := &ts[i]
		whole := t.hdr.Bytes
		if t.hdr.Size != 0 { // the backend left a zero tail out already; its rest may end in zeros too
			whole = t.hdr.Size
		}
		if t.hdr.DType != WireI32 && whole >= zeroTailMin {
			eb := t.elemBytes()
			n := t.hdr.Bytes / eb
			if keep := int64(t.nonZeroPrefix(int(n))); keep < n {
				t.hdr.Bytes, t.hdr.Size = keep*eb, whole
				if t.raw != nil {
					t.raw = t.raw[:t.hdr.Bytes]
				}
			}
		}
		t.hdr.Offset = size
		size += t.hdr.Bytes
	}
	return size
}

// nonZeroPrefix returns the length of the shortest prefix of t's first n elements after
// which every element is zero bits (+0): the index after the last non-zero element.
func (t *wireTensor) nonZeroPrefix(n int) int {
	const block = 1 << 16 // elements per range of the parallel scan
	nb := (n + block - 1) / block
	last := make([]int, nb) // per block: 1 + its last non-zero element's index, or 0
	par.For(par.New(0, 0), nb, block, t, func(t *wireTensor, lo, hi int) {
		for k := lo; k < hi; k++ {
			last[k] = t.lastNonZero(k*block, min((k+1)*block, n)) + 1
		}
	})
	for k := nb - 1; k >= 0; k-- {
		if last[k] > 0 {
			return last[k]
		}
	}
	return 0
}

// lastNonZero returns the index of the last element in [lo, hi) of t that is not zero bits,
// or −1 when there is none.
func (t *wireTensor) lastNonZero(lo, hi int) int {
	if t.raw != nil {
		eb := int(t.elemBytes())
		b := t.raw[lo*eb : hi*eb]
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return lo + i/eb
			}
		}
		return -1
	}
	for i := hi - 1; i >= lo; i-- {
		if math.Float32bits(t.f32[i]) != 0 {
			return i
		}
	}
	return -1
}

// floatValues returns the n float32 values of a result tensor of dtype d whose payload bytes
// are b, the first len(b) bytes of the n elements (the rest +0: a zero tail).
func floatValues(d moe.DType, b []byte, n int) []float32 {
	v := hugemem.Float32s(n)
	d.Float32s(v[:len(b)/(d.Bits()/8)], b)
	return v
}
