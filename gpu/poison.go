package gpu

import (
	"fmt"
	"math"
	"strings"

	"github.com/moecheck/moecheck/moe"
)

// Poison is the fill of memory the path takes uninitialized. A correct path writes (or
// zeroes) everything it reads, so its result is bitwise identical under every policy.
type Poison uint8

const (
	// PoisonZeros: zero bytes, what fresh device memory reads as (training step 1).
	PoisonZeros Poison = iota
	// PoisonNaN: quiet NaN everywhere.
	PoisonNaN
	// PoisonPosInf: +Inf everywhere.
	PoisonPosInf
	// PoisonNegInf: −Inf everywhere.
	PoisonNegInf
	// PoisonHuge: finite values of huge magnitude, ±(1e4·|N(0,1)|+1e4)·... clamped to the
	// dtype's range: each element ±MaxFinite/2^k for a random k in [0, 8).
	PoisonHuge
	// PoisonStale: the finite values the same buffer held after the previous run of the
	// backend (recycled memory, training step 2); on the first run, PoisonHuge.
	PoisonStale
	// PoisonSignature: a distinct quiet-NaN payload per buffer (SignatureNaN), so a value
	// that survives to an output names the buffer that was never written.
	PoisonSignature
	numPoisons
)

// poisonList lists every policy.
var poisonList = []Poison{PoisonZeros, PoisonNaN, PoisonPosInf, PoisonNegInf, PoisonHuge, PoisonStale, PoisonSignature}

var poisonNames = [...]string{"zeros", "nan", "+inf", "-inf", "huge", "stale", "signature"}

func (p Poison) String() string {
	if p < numPoisons {
		return poisonNames[p]
	}
	return fmt.Sprintf("poison(%d)", uint8(p))
}

// ParsePoison parses a policy name ("zeros", "nan", "+inf" or "inf", "-inf", "huge",
// "stale", "signature" or "sig").
func ParsePoison(s string) (Poison, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "inf", "posinf":
		return PoisonPosInf, nil
	case "neginf":
		return PoisonNegInf, nil
	case "sig":
		return PoisonSignature, nil
	case "zero", "fresh":
		return PoisonZeros, nil
	}
	for i, n := range poisonNames {
		if s == n {
			return Poison(i), nil
		}
	}
	return 0, fmt.Errorf("gpu: unknown poison policy %q (want one of %s)", s, strings.Join(poisonNames[:], ", "))
}

// Signature NaNs: float32 quiet NaN 0x7FC00000 with the buffer id in mantissa bits 16..21.
// Those bits are inside bf16's 7-bit and fp16's 10-bit mantissa, so the payload survives
// storage in every dtype (bf16 keeps float32 bits 16..22; fp16 keeps bits 13..22).
const (
	sigBase  = 0x7FC00000
	sigShift = 16
	sigMask  = 0x3F << sigShift
)

// SignatureNaN returns the signature NaN of buffer b.
func SignatureNaN(b Buffer) float32 { return math.Float32frombits(sigBase | uint32(b)<<sigShift) }

// SignatureOf reports which buffer's signature NaN v carries, if any. Only quiet NaNs whose
// payload is exactly a buffer id in bits 16..21 (lower bits may hold anything a dtype
// round-trip left there) count.
func SignatureOf(v float32) (Buffer, bool) {
	b := math.Float32bits(v) &^ 0x80000000
	if b&0x7FC00000 != 0x7FC00000 {
		return 0, false
	}
	id := Buffer((b & sigMask) >> sigShift)
	if b&^(uint32(sigMask)|0xFFFF) != sigBase || !id.Valid() {
		return 0, false
	}
	return id, true
}

// PoisonValue returns the fill value of element i of buffer b under policy p, for dtype d
// (already a value of d). Stale is resolved by the backend (it needs the previous run); here
// it falls back to Huge. rnd is a 64-bit random draw for the element (Huge uses it).
func PoisonValue(p Poison, b Buffer, d moe.DType, rnd uint64) float32 {
	switch p {
	case PoisonNaN:
		return float32(math.NaN())
	case PoisonPosInf:
		return float32(math.Inf(1))
	case PoisonNegInf:
		return float32(math.Inf(-1))
	case PoisonHuge, PoisonStale:
		v := math.Ldexp(d.MaxFinite(), -int(rnd&7))
		if rnd&8 != 0 {
			v = -v
		}
		return float32(d.Round(v))
	case PoisonSignature:
		return SignatureNaN(b)
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
func Fill(buf []float32, p Poison, b Buffer, d moe.DType, seed uint64) {
	switch p {
	case PoisonZeros:
		clear(buf)
	case PoisonHuge, PoisonStale:
		base := seed ^ uint64(b)<<56
		for i := range buf {
			buf[i] = PoisonValue(p, b, d, SplitMix64(base+uint64(i)))
		}
	default:
		v := PoisonValue(p, b, d, 0)
		for i := range buf {
			buf[i] = v
		}
	}
}

// Poisons returns every poison policy (a fresh copy: the table itself cannot be changed from outside).
func Poisons() []Poison { return append([]Poison(nil), poisonList...) }

// Valid reports whether p is one of Poisons() (without copying the table).
func (p Poison) Valid() bool {
	for _, q := range poisonList {
		if p == q {
			return true
		}
	}
	return false
}
