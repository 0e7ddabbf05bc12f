package moe

import (
	"fmt"
	"math"
	"strings"

	"github.com/x448/float16"
)

// DType is the storage dtype of a case: inputs, weights, every stored intermediate and every
// output of the path under test are values of this type. Accumulation is always fp32.
type DType uint8

const (
	// BF16 is bfloat16: 8 significant bits, the exponent range of float32.
	BF16 DType = iota
	// FP16 is IEEE binary16: 11 significant bits, max 65504, subnormals below 2^-14.
	FP16
	// FP32 is IEEE binary32.
	FP32
)

// dtypeList lists every dtype, in a stable order.
var dtypeList = []DType{BF16, FP16, FP32}

// format describes a binary floating-point format for rounding: p significant bits
// (including the implicit one), normal exponents in [emin, emax].
type format struct{ p, emin, emax int }

func (d DType) format() format {
	switch d {
	case BF16:
		return format{8, -126, 127}
	case FP16:
		return format{11, -14, 15}
	default:
		return format{24, -126, 127}
	}
}

func (d DType) String() string {
	switch d {
	case BF16:
		return "bf16"
	case FP16:
		return "fp16"
	case FP32:
		return "fp32"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Valid reports whether d is one of the defined dtypes.
func (d DType) Valid() bool { return d <= FP32 }

// ParseDType parses "bf16", "fp16" or "fp32" (also "bfloat16", "float16", "half", "float32").
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "bf16", "bfloat16":
		return BF16, nil
	case "fp16", "f16", "float16", "half":
		return FP16, nil
	case "fp32", "f32", "float32", "float":
		return FP32, nil
	}
	return 0, fmt.Errorf("moe: unknown dtype %q (want bf16, fp16 or fp32)", s)
}

// UnitRoundoff is u = 2^-p for round-to-nearest: bf16 2^-8, fp16 2^-11, fp32 2^-24.
func (d DType) UnitRoundoff() float64 { return math.Ldexp(1, -d.format().p) }

// Bits is the storage width in bits (16 or 32).
func (d DType) Bits() int {
	if d == FP32 {
		return 32
	}
	return 16
}

// MaxFinite is the largest finite value of d.
func (d DType) MaxFinite() float64 {
	f := d.format()
	return math.Ldexp(2-math.Ldexp(1, 1-f.p), f.emax)
}

// MinNormal is the smallest positive normal value of d.
func (d DType) MinNormal() float64 { return math.Ldexp(1, d.format().emin) }

// MinSubnormal is the smallest positive subnormal value of d.
func (d DType) MinSubnormal() float64 {
	f := d.format()
	return math.Ldexp(1, f.emin-f.p+1)
}

// Round rounds x to the nearest value of d, ties to even, with IEEE overflow to ±Inf and
// gradual underflow; NaN and ±Inf pass through, and the sign of zero is kept. It rounds the
// float64 directly (no intermediate float32, so no double rounding).
func (d DType) Round(x float64) float64 {
	f := d.format()
	// Fast path: x and the result normal in d: round the float64's significand to p bits
	// in place (adding half an ulp minus one, plus the kept lsb, then truncating is
	// round-to-nearest-even; a carry into the exponent is the correct result).
	b := math.Float64bits(x)
	e := int(b>>52&0x7ff) - 1023
	if e >= f.emin && e < f.emax {
		shift := uint(53 - f.p)
		b += (uint64(1)<<(shift-1) - 1) + (b>>shift)&1
		b &^= uint64(1)<<shift - 1
		return math.Float64frombits(b)
	}
	if b<<1 == 0 {
		return x // ±0
	}
	return roundTo(x, f)
}

func roundTo(x float64, f format) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	a := math.Abs(x)
	_, e2 := math.Frexp(a) // a = m·2^e2, m in [0.5, 1): exponent of a is e2-1
	e := e2 - 1
	if e < f.emin {
		e = f.emin // subnormal: fixed quantum
	}
	q := math.Ldexp(1, e-f.p+1) // spacing of d's values at a's exponent
	r := math.RoundToEven(a/q) * q
	if r > math.Ldexp(2-math.Ldexp(1, 1-f.p), f.emax) {
		r = math.Inf(1)
	}
	return math.Copysign(r, x)
}

// Representable reports whether x is exactly a value of d (NaN and ±Inf count as values).
func (d DType) Representable(x float64) bool {
	// Fast path: x in d's normal range is a value of d exactly when the float64 significand
	// bits below d's precision are zero (the definition below, without the rounding).
	f := d.format()
	b := math.Float64bits(x)
	if e := int(b>>52&0x7ff) - 1023; e >= f.emin && e <= f.emax {
		return b&(uint64(1)<<uint(53-f.p)-1) == 0
	}
	if math.IsNaN(x) {
		return true
	}
	return d.Round(x) == x
}

// Ulp is the spacing of d's values at |x| (the gap to the next value away from zero).
func (d DType) Ulp(x float64) float64 {
	f := d.format()
	a := math.Abs(x)
	e := f.emin
	if a != 0 && !math.IsInf(a, 0) && !math.IsNaN(a) {
		_, e2 := math.Frexp(a)
		if e2-1 > e {
			e = e2 - 1
		}
	}
	return math.Ldexp(1, e-f.p+1)
}

// ToBits encodes a value of d (one for which Representable is true; others are rounded
// first) as its storage bits in the low Bits() bits. NaN payloads are not preserved here
// (use the float32 bit helpers for payload work).
func (d DType) ToBits(x float64) uint32 {
	f32 := float32(d.Round(x))
	switch d {
	case BF16:
		return math.Float32bits(f32) >> 16 // exact: the value has at most 8 significant bits
	case FP16:
		return uint32(float16.Fromfloat32(f32).Bits())
	default:
		return math.Float32bits(f32)
	}
}

// FromBits decodes storage bits of d to float32, exactly, NaN payloads included
// (bf16 and fp16 payloads land in the top mantissa bits of the float32).
func (d DType) FromBits(b uint32) float32 {
	switch d {
	case BF16:
		return math.Float32frombits(b << 16)
	case FP16:
		return f16ToF32(uint16(b))
	default:
		return math.Float32frombits(b)
	}
}

// RoundFloat32 rounds a float32 to d (identity for FP32), ties to even, keeping NaN payloads
// that fit d's mantissa. This is the storage rounding of a path that computes in fp32.
func (d DType) RoundFloat32(x float32) float32 {
	switch d {
	case BF16:
		b := math.Float32bits(x)
		if b&0x7f800000 == 0x7f800000 { // Inf or NaN: truncate payload, keep quiet bit
			if b&0x007fffff != 0 {
				return math.Float32frombits((b & 0xffff0000) | 0x00400000)
			}
			return x
		}
		b += 0x7fff + (b>>16)&1
		return math.Float32frombits(b & 0xffff0000)
	case FP16:
		// Fast path: |x| in fp16's normal range below 2^15 (so rounding cannot overflow):
		// round the float32 significand to 11 bits in place (round to nearest even, a carry
		// into the exponent being the correct result), as Round does for float64.
		b := math.Float32bits(x)
		if e := int(b>>23&0xff) - 127; e >= -14 && e < 15 {
			b += 0xfff + (b>>13)&1
			return math.Float32frombits(b &^ 0x1fff)
		}
		if b&0x7fffffff == 0 {
			return x // ±0 (masked rows, zero tails) is its own rounding
		}
		return float16.Fromfloat32(x).Float32()
	default:
		return x
	}
}

// DTypes returns every dtype, in a stable order (a fresh copy: the table itself cannot be changed from outside).
func DTypes() []DType { return append([]DType(nil), dtypeList...) }
