package rawcase

import (
	"encoding/binary"
	"math"
	"sync/atomic"

	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/moe"
)

// lanes describes a dtype's storage patterns packed in a uint64: exp masks each lane's
// exponent field; exp+one carries into the lane's sign bit (top) exactly when the field is
// all ones (NaN or ±Inf), and never into the next lane.
type lanes struct{ exp, one, top uint64 }

func lanesOf(d moe.DType) lanes {
	switch d {
	case moe.BF16:
		return lanes{0x7f807f807f807f80, 0x0080008000800080, 0x8000800080008000}
	case moe.FP16:
		return lanes{0x7c007c007c007c00, 0x0400040004000400, 0x8000800080008000}
	}
	return lanes{0x7f8000007f800000, 0x0080000000800000, 0x8000000080000000}
}

// nonFinite reports whether the storage pattern u of d is NaN or ±Inf.
func nonFinite(d moe.DType, u uint32) bool {
	switch d {
	case moe.BF16:
		return u&0x7f80 == 0x7f80
	case moe.FP16:
		return u&0x7c00 == 0x7c00
	}
	return u&0x7f800000 == 0x7f800000
}

// firstNonFinite returns the index of the first NaN or ±Inf among the storage bits of d in b
// (whole values), or −1: eight bytes at a time, split over the cores for large tensors (each
// range stops at its first hit; the smallest index wins, the one a serial scan finds).
func firstNonFinite(d moe.DType, b []byte) int {
	w := d.Bits() / 8
	n := len(b) / w
	first := atomic.Int64{}
	first.Store(math.MaxInt64)
	type arg struct {
		d     moe.DType
		b     []byte
		first *atomic.Int64
	}
	// Ranges of whole words: index ranges over words of 8 bytes.
	words := len(b) / 8
	par.For(par.New(0, 0), words, 2, arg{d, b, &first}, func(a arg, lo, hi int) {
		if int64(lo*8/w) > a.first.Load() {
			return
		}
		l := lanesOf(a.d)
		for i := lo; i < hi; i++ {
			x := binary.LittleEndian.Uint64(a.b[8*i:])
			if (x&l.exp+l.one)&l.top == 0 {
				continue
			}
			for j := 8 * i / w; j < 8*(i+1)/w; j++ {
				if nonFinite(a.d, element(a.d, a.b, j)) {
					lower(a.first, int64(j))
					return
				}
			}
		}
	})
	for j := words * 8 / w; j < n; j++ { // the tail after the last whole word
		if nonFinite(d, element(d, b, j)) {
			lower(&first, int64(j))
			break
		}
	}
	if f := first.Load(); f != math.MaxInt64 {
		return int(f)
	}
	return -1
}

func element(d moe.DType, b []byte, j int) uint32 {
	if d.Bits() == 16 {
		return uint32(binary.LittleEndian.Uint16(b[2*j:]))
	}
	return binary.LittleEndian.Uint32(b[4*j:])
}

// lower sets *f to min(*f, i).
func lower(f *atomic.Int64, i int64) {
	for {
		v := f.Load()
		if i >= v || f.CompareAndSwap(v, i) {
			return
		}
	}
}
