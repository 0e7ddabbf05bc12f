package moe

import (
	"math"
	"testing"

	"github.com/x448/float16"
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

// TestF16ToF32: the fast fp16 decode (FromBits, Float32s) is the general conversion
// (float16.Float16.Float32) bit for bit on every fp16 pattern, NaN payloads included.
func TestF16ToF32(t *testing.T) {
	b := make([]byte, 2<<16)
	for u := range 1 << 16 {
		b[2*u], b[2*u+1] = byte(u), byte(u>>8)
	}
	all := make([]float32, 1<<16)
	FP16.Float32s(all, b)
	for u := range 1 << 16 {
		want := math.Float32bits(float16.Frombits(uint16(u)).Float32())
		if got := math.Float32bits(FP16.FromBits(uint32(u))); got != want {
			t.Fatalf("FromBits(%#04x) = %#08x, want %#08x", u, got, want)
		}
		if got := math.Float32bits(all[u]); got != want {
			t.Fatalf("Float32s: %#04x decoded as %#08x, want %#08x", u, got, want)
		}
	}
}
