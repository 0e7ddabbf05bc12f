package moe

import (
	"encoding/binary"

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
	par.For(par.New(0, 0), len(v), 1, v, func(v []float32, lo, hi int) {
		for i := lo; i < hi; i++ {
			if w == 2 {
				v[i] = d.FromBits(uint32(binary.LittleEndian.Uint16(b[2*i:])))
			} else {
				v[i] = d.FromBits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		}
	})
}
