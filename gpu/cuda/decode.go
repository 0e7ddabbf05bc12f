package cuda

// No build tag: pure Go, tested in the default build: the conversions between case values
// and the device's storage bits, used by Run on values (the worker runs cases on their bits:
// RunBits, no conversion).

import "github.com/moecheck/moecheck/moe"

// decode converts storage bytes to float32, exactly (NaN payloads kept, as
// moe.DType.FromBits), over the cores (moe.DType.Float32s).
func decode(d moe.DType, b []byte) []float32 {
	out := make([]float32, len(b)/(d.Bits()/8))
	d.Float32s(out, b)
	return out
}

// encodeTo writes case values as the dtype's storage bytes (little-endian) into out
// (len(v)·element size bytes), over the cores (moe.DType.PutBits), and returns out.
func encodeTo(out []byte, d moe.DType, v []float64) []byte {
	d.PutBits(out, v)
	return out
}
