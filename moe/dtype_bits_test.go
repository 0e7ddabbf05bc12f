package moe

import (
	"math"
	"testing"
)

// TestBitsRoundTrip: PutBits then Float32s gives back every value of each dtype exactly, over
// sizes that do and do not split over the cores, and the bytes are ToBits' little-endian.
func TestBitsRoundTrip(t *testing.T) {
	for _, d := range []DType{BF16, FP16, FP32} {
		for _, n := range []int{0, 1, 7, 1 << 17} {
			rng := NewRand(uint64(n) + uint64(d))
			v := make([]float64, n)
			for i := range v {
				v[i] = d.Round(math.Ldexp(rng.NormFloat64(), rng.IntN(20)-10))
			}
			w := d.Bits() / 8
			b := make([]byte, n*w)
			d.PutBits(b, v)
			for i := range min(n, 3) {
				bits := d.ToBits(v[i])
				if b[w*i] != byte(bits) || b[w*i+1] != byte(bits>>8) {
					t.Fatalf("bits/%s/n=%d: value %d written as % x, want bits %#x", d, n, i, b[w*i:w*i+w], bits)
				}
			}
			got := make([]float32, n)
			d.Float32s(got, b)
			for i := range v {
				if float64(got[i]) != v[i] {
					t.Fatalf("bits/%s/n=%d: value %d came back %v, want %v", d, n, i, got[i], v[i])
				}
			}
		}
	}
}
