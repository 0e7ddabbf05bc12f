package moe

import (
	"encoding/binary"
	"math"

	"github.com/moecheck/moecheck/internal/par"
)

// PutBits writes the storage bits of d for every value of v (little-endian, d.Bits()/8 bytes
// each) into b, over the cores: the upload of a case to a device or a worker. Values must be
// representable in d (ToBits).
func (d DType) PutBits(b []byte, v []float64) {
	w := d.Bits() / 8
	par.For(par.New(0, 0), len(v), 1, v, func(v []float64, lo, hi int) {
		for i := lo; i < hi; i++ {
			bits := d.ToBits(v[i])
			if w == 2 {
				binary.LittleEndian.PutUint16(b[2*i:], uint16(bits))
			} else {
				binary.LittleEndian.PutUint32(b[4*i:], bits)
			}
		}
	})
}

// Float32s reads len(v) values of d from their storage bits in b (little-endian) into v,
// exactly (NaN payloads kept: FromBits), over the cores: a device's or a worker's results.
func (d DType) Float32s(v []float32, b []byte) {
	w := d.Bits() / 8
	par.For(par.New(0, 0), len(v), 1, v, func(v []float32, lo, hi int) { d.float32s(v[lo:hi], b[lo*w:hi*w]) })
}

// float32s is Float32s on the calling goroutine, one loop per dtype (FromBits's cases).
func (d DType) float32s(v []float32, b []byte) {
	switch d {
	case BF16:
		for i := range v {
			v[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case FP16:
		for i := range v {
			v[i] = f16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	default:
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	}
}

// f16ToF32 decodes fp16 bits to float32 exactly, as the general conversion
// (float16.Float16.Float32) does, NaN payloads kept and signalling NaNs made quiet
// (TestF16ToF32 compares every pattern): the exponent rebiased for normal values, the common
// case, without the general conversion's calls; subnormals as their integer significand
// times 2^-24.
func f16ToF32(u uint16) float32 {
	sign := uint32(u&0x8000) << 16
	e, m := uint32(u>>10)&0x1f, uint32(u&0x3ff)
	switch {
	case e != 0 && e != 0x1f:
		return math.Float32frombits(sign | (e+112)<<23 | m<<13)
	case e == 0x1f: // ±Inf, or NaN made quiet (as the general conversion does)
		q := uint32(0)
		if m != 0 {
			q = 0x00400000
		}
		return math.Float32frombits(sign | 0x7f800000 | q | m<<13)
	}
	return math.Float32frombits(sign | math.Float32bits(float32(m)*0x1p-24))
}
