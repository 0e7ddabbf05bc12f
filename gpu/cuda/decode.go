package cuda

// No build tag: pure Go, tested in the default build (decode_test.go).

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
