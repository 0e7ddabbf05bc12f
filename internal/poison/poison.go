package poison

import (
	"math"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Signature NaNs: float32 quiet NaN 0x7FC00000 with the buffer id in mantissa bits 16..21.
// Those bits are inside bf16's 7-bit and fp16's 10-bit mantissa, so the payload survives
// storage in every dtype (bf16 keeps float32 bits 16..22; fp16 keeps bits 13..22).
const (
	sigBase  = 0x7FC00000
	sigShift = 16
	sigMask  = 0x3F << sigShift
)

// NaN returns the signature NaN of buffer b (gpu.Buffer.SignatureNaN, the contract's
// definition; Of decodes it).
func NaN(b gpu.Buffer) float32 { return b.SignatureNaN() }

// Of reports which buffer's signature NaN v carries, if any. Only quiet NaNs whose
// payload is exactly a buffer id in bits 16..21 (lower bits may hold anything a dtype
// round-trip left there) count.
func Of(v float32) (gpu.Buffer, bool) {
	b := math.Float32bits(v) &^ 0x80000000
	if b&0x7FC00000 != 0x7FC00000 {
		return 0, false
	}
	id := gpu.Buffer((b & sigMask) >> sigShift)
	if b&^(uint32(sigMask)|0xFFFF) != sigBase || !id.Valid() {
		return 0, false
	}
	return id, true
}

// Value returns the fill value of element i of buffer b under policy p, for dtype d
// (already a value of d). Stale is resolved by the backend (it needs the previous run); here
// it falls back to Huge. rnd is a 64-bit random draw for the element (Huge uses it).
func Value(p gpu.Poison, b gpu.Buffer, d moe.DType, rnd uint64) float32 {
	switch p {
	case gpu.PoisonNaN:
		return float32(math.NaN())
	case gpu.PoisonPosInf:
		return float32(math.Inf(1))
	case gpu.PoisonNegInf:
		return float32(math.Inf(-1))
	case gpu.PoisonHuge, gpu.PoisonStale:
		v := math.Ldexp(d.MaxFinite(), -int(rnd&7))
		if rnd&8 != 0 {
			v = -v
		}
		return float32(d.Round(v))
	case gpu.PoisonSignature:
		return NaN(b)
	}
	return 0
}

// SplitMix64 is the per-element random draw used for poison fills: element i of a buffer
// filled with seed s gets SplitMix64(s ^ uint64(b)<<56 + i). Cheap, stateless, identical in
// every backend.
func SplitMix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Fill poisons buf (buffer b, dtype d) under policy p with seed; Stale is treated as Huge
// (backends keep and reuse their previous buffers to implement Stale).
func Fill(buf []float32, p gpu.Poison, b gpu.Buffer, d moe.DType, seed uint64) {
	FillRange(buf, 0, p, b, d, seed)
}

// FillRange is Fill on elements from, from+1, … of a buffer: buf[j] gets the value Fill gives
// element from+j (so a buffer can be filled in ranges, in any order, with Fill's values).
func FillRange(buf []float32, from int, p gpu.Poison, b gpu.Buffer, d moe.DType, seed uint64) {
	switch p {
	case gpu.PoisonZeros:
		clear(buf)
	case gpu.PoisonHuge, gpu.PoisonStale:
		// Value(Huge) reads the draw's low 4 bits only: its 16 values, computed once.
		var tab [16]float32
		for k := range tab {
			tab[k] = Value(p, b, d, uint64(k))
		}
		base := (seed ^ uint64(b)<<56) + uint64(from)
		for i := range buf {
			buf[i] = tab[SplitMix64(base+uint64(i))&15]
		}
	default:
		v := Value(p, b, d, 0)
		for i := range buf {
			buf[i] = v
		}
	}
}
