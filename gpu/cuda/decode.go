package cuda

// No build tag: pure Go, tested in the default build (decode_test.go): the conversions
// between case values and the device's storage bits.

import (
	"encoding/binary"
	"math"

	"github.com/moecheck/moecheck/moe"
)

// decodeSerial is the largest result decoded in one plain loop; larger ones go over the
// cores (moe.DType.Float32s).
const decodeSerial = 1 << 16

// decode converts storage bytes to float32, exactly (NaN payloads kept, as
// moe.DType.FromBits): small bf16 and fp32 results, the common case, by a shift in one loop
// without a per-element dtype switch; fp16 and large results through moe.DType.Float32s,
// over the cores (a result with stages is gigabytes at real shapes, and this is the
// worker's serial part).
func decode(d moe.DType, b []byte) []float32 {
	out := make([]float32, len(b)/(d.Bits()/8))
	switch {
	case len(out) > decodeSerial || d == moe.FP16:
		d.Float32s(out, b)
	case d == moe.BF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	default:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	}
	return out
}

// encodeTo writes case values as the dtype's storage bytes (little-endian) into out
// (len(v)·element size bytes) and returns out: the bits of moe.DType.PutBits. Small bf16 and
// fp32 inputs, the common case, go through one loop: a value exactly representable in the
// dtype (every value of a valid case but NaNs) is its float32's bits, which is what rounding
// it (ToBits) gives; any other value goes through ToBits. fp16 and large inputs go through
// PutBits, over the cores.
func encodeTo(out []byte, d moe.DType, v []float64) []byte {
	switch {
	case len(v) > decodeSerial || d == moe.FP16:
		d.PutBits(out, v)
	case d == moe.BF16:
		for i, x := range v {
			f := float32(x)
			b := math.Float32bits(f)
			if float64(f) != x || b&0xffff != 0 {
				b = d.ToBits(x) << 16
			}
			binary.LittleEndian.PutUint16(out[2*i:], uint16(b>>16))
		}
	default:
		for i, x := range v {
			f := float32(x)
			b := math.Float32bits(f)
			if float64(f) != x {
				b = d.ToBits(x)
			}
			binary.LittleEndian.PutUint32(out[4*i:], b)
		}
	}
	return out
}
