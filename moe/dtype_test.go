package moe_test

import (
	"math"
	"math/big"
	"testing"

	"github.com/x448/float16"

	"github.com/moecheck/moecheck/moe"
)

// roundBig is an independent model of DType.Round: math/big's round-to-nearest-even at p
// bits in the normal range, a fixed quantum of MinSubnormal below it (x/q is exact: q is a
// power of two), overflow to ±Inf above MaxFinite, the sign of zero kept.
func roundBig(d moe.DType, x float64) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	var r float64
	if math.Abs(x) < d.MinNormal() {
		q := d.MinSubnormal()
		r = math.RoundToEven(x/q) * q
	} else {
		p := map[moe.DType]uint{moe.BF16: 8, moe.FP16: 11, moe.FP32: 24}[d]
		r, _ = new(big.Float).SetMode(big.ToNearestEven).SetPrec(p).SetFloat64(x).Float64()
	}
	if math.Abs(r) > d.MaxFinite() {
		r = math.Inf(1)
	}
	return math.Copysign(r, x)
}

// bf16RNE rounds a float32 to bfloat16 at bit level: add 0x7fff plus the lowest kept bit,
// truncate the low 16 bits (round to nearest, ties to even; carries into Inf on overflow).
func bf16RNE(f float32) float32 {
	b := math.Float32bits(f)
	b += 0x7fff + (b>>16)&1
	return math.Float32frombits(b & 0xffff0000)
}

// randomFloat32 draws a float32 with uniformly random bits (NaNs redrawn), so every
// exponent, subnormals and both zeros occur.
func randomFloat32(rng interface{ Uint32() uint32 }) float32 {
	for {
		f := math.Float32frombits(rng.Uint32())
		if !math.IsNaN(float64(f)) {
			return f
		}
	}
}

// randomFloat64 draws a float64 with random mantissa bits and an exponent around the
// dtypes' ranges (2^-160 … 2^130), either sign.
func randomFloat64(rng interface {
	Uint64() uint64
	IntN(int) int
}) float64 {
	m := 1 + float64(rng.Uint64()>>11)*0x1p-53
	x := math.Ldexp(m, rng.IntN(291)-160)
	if rng.IntN(2) == 0 {
		x = -x
	}
	return x
}

func sameBits(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || (math.IsNaN(a) && math.IsNaN(b))
}

// TestRoundAgainstConversions compares DType.Round with the conversions it must agree with:
// FP32 with Go's float64→float32 conversion (IEEE round to nearest even) within the finite
// range, FP16 with github.com/x448/float16 on float32 inputs (one rounding, no double
// rounding), BF16 with bit-level RNE on float32 inputs, and every dtype with math/big on
// random float64 inputs.
func TestRoundAgainstConversions(t *testing.T) {
	rng := moe.NewRand(1)
	for n := 0; n < 300000; n++ {
		f := randomFloat32(rng)
		x := float64(f)
		if got, want := moe.FP16.Round(x), float64(float16.Fromfloat32(f).Float32()); !sameBits(got, want) {
			t.Fatalf("FP16.Round(%g) = %g, float16 package %g", x, got, want)
		}
		if got, want := moe.BF16.Round(x), float64(bf16RNE(f)); !sameBits(got, want) {
			t.Fatalf("BF16.Round(%g) = %g, bit-level RNE %g", x, got, want)
		}
		if got := moe.FP32.Round(x); !sameBits(got, x) {
			t.Fatalf("FP32.Round(%g) = %g, want it unchanged", x, got)
		}
		y := randomFloat64(rng)
		if math.Abs(y) <= math.MaxFloat32 {
			if got, want := moe.FP32.Round(y), float64(float32(y)); !sameBits(got, want) {
				t.Fatalf("FP32.Round(%g) = %g, float32 conversion %g", y, got, want)
			}
		}
		for _, d := range moe.DTypes() {
			if got, want := d.Round(y), roundBig(d, y); !sameBits(got, want) {
				t.Fatalf("%s.Round(%g) = %g, math/big %g", d, y, got, want)
			}
		}
	}
}

// TestRoundEdges checks ties, subnormals, the overflow boundary, zeros and non-finite
// values for every dtype.
func TestRoundEdges(t *testing.T) {
	for _, d := range moe.DTypes() {
		p := map[moe.DType]int{moe.BF16: 8, moe.FP16: 11, moe.FP32: 24}[d]
		ulp1 := math.Ldexp(1, 1-p) // spacing of d's values in [1, 2)
		sub := d.MinSubnormal()
		max := d.MaxFinite()
		halfTop := math.Ldexp(1, 127) // ulp of the top binade / 2
		if d == moe.FP16 {
			halfTop = math.Ldexp(1, 15)
		}
		halfTop = math.Ldexp(halfTop, 1-p) / 2
		tests := []struct {
			name    string
			in, out float64
		}{
			{"tie-down-to-even", 1 + ulp1/2, 1},
			{"tie-up-to-even", 1 + 3*ulp1/2, 1 + 2*ulp1},
			{"above-tie", 1 + ulp1/2 + ulp1/16, 1 + ulp1},
			{"negative-tie", -(1 + ulp1/2), -1},
			{"subnormal-exact", 3 * sub, 3 * sub},
			{"half-min-subnormal-ties-to-zero", sub / 2, 0},
			{"three-quarter-subnormal", 0.75 * sub, sub},
			{"subnormal-tie-to-even", 1.5 * sub, 2 * sub},
			{"negative-underflow", -sub / 4, math.Copysign(0, -1)},
			{"top-subnormal-rounds-to-normal", d.MinNormal() - sub/2, d.MinNormal()},
			{"max-finite", max, max},
			{"below-overflow-tie", max + halfTop*0.999, max},
			{"overflow-tie-to-inf", max + halfTop, math.Inf(1)},
			{"negative-overflow", -(max + 2*halfTop), math.Inf(-1)},
			{"zero", 0, 0},
			{"negative-zero", math.Copysign(0, -1), math.Copysign(0, -1)},
			{"inf", math.Inf(1), math.Inf(1)},
			{"nan", math.NaN(), math.NaN()},
		}
		for _, tt := range tests {
			if got := d.Round(tt.in); !sameBits(got, tt.out) {
				t.Errorf("%s/%s: Round(%g) = %g, want %g", d, tt.name, tt.in, got, tt.out)
			}
			if got := roundBig(d, tt.in); !sameBits(got, tt.out) {
				t.Errorf("%s/%s: the math/big model gives %g, want %g (test table wrong?)", d, tt.name, got, tt.out)
			}
		}
		if !d.Representable(max) || d.Representable(max*(1+ulp1/4)) || !d.Representable(math.NaN()) || !d.Representable(sub) {
			t.Errorf("%s: Representable wrong at the edges", d)
		}
	}
}

// TestRoundFloat32 checks the fp32 → dtype storage rounding against Round, and that NaNs
// stay NaN (bf16 keeping the top payload bits and setting the quiet bit).
func TestRoundFloat32(t *testing.T) {
	rng := moe.NewRand(2)
	for n := 0; n < 300000; n++ {
		f := randomFloat32(rng)
		for _, d := range moe.DTypes() {
			if got, want := float64(d.RoundFloat32(f)), d.Round(float64(f)); !sameBits(got, want) {
				t.Fatalf("%s.RoundFloat32(%g) = %g, Round gives %g", d, f, got, want)
			}
		}
	}
	nan := math.Float32frombits(0x7fa5_1234) // signalling NaN with a payload
	if b := math.Float32bits(moe.BF16.RoundFloat32(nan)); b != 0x7fe5_0000 {
		t.Errorf("BF16.RoundFloat32(NaN 0x7fa51234) = %#x, want 0x7fe50000 (payload top kept, quiet)", b)
	}
	for _, d := range moe.DTypes() {
		if g := d.RoundFloat32(nan); !math.IsNaN(float64(g)) {
			t.Errorf("%s.RoundFloat32(NaN) = %v", d, g)
		}
	}
}

// TestBitsRoundTrip checks FromBits/ToBits on every 16-bit pattern of bf16 and fp16 and on
// random fp32 patterns, and a few known encodings.
func TestBitsRoundTrip(t *testing.T) {
	for _, d := range []moe.DType{moe.BF16, moe.FP16} {
		for b := uint32(0); b < 1<<16; b++ {
			v := d.FromBits(b)
			if math.IsNaN(float64(v)) {
				continue
			}
			if !d.Representable(float64(v)) {
				t.Fatalf("%s.FromBits(%#04x) = %g is not representable", d, b, v)
			}
			if got := d.ToBits(float64(v)); got != b {
				t.Fatalf("%s: ToBits(FromBits(%#04x)) = %#04x", d, b, got)
			}
		}
	}
	rng := moe.NewRand(3)
	for n := 0; n < 100000; n++ {
		b := rng.Uint32()
		v := moe.FP32.FromBits(b)
		if math.IsNaN(float64(v)) {
			if math.Float32bits(v) != b {
				t.Fatalf("FP32.FromBits(%#x) lost the NaN payload", b)
			}
			continue
		}
		if got := moe.FP32.ToBits(float64(v)); got != b {
			t.Fatalf("FP32: ToBits(FromBits(%#x)) = %#x", b, got)
		}
	}
	known := []struct {
		d    moe.DType
		bits uint32
		v    float64
	}{
		{moe.BF16, 0x3f80, 1}, {moe.BF16, 0xc000, -2}, {moe.BF16, 0x8000, math.Copysign(0, -1)}, {moe.BF16, 0x0001, 0x1p-133},
		{moe.BF16, 0x7f7f, moe.BF16.MaxFinite()}, {moe.BF16, 0x7f80, math.Inf(1)},
		{moe.FP16, 0x3c00, 1}, {moe.FP16, 0x7bff, 65504}, {moe.FP16, 0x0001, 0x1p-24}, {moe.FP16, 0x8000, math.Copysign(0, -1)},
		{moe.FP16, 0xfc00, math.Inf(-1)},
		{moe.FP32, 0x3f800000, 1}, {moe.FP32, 0x00000001, 0x1p-149}, {moe.FP32, 0x80000000, math.Copysign(0, -1)},
	}
	for _, k := range known {
		if got := float64(k.d.FromBits(k.bits)); !sameBits(got, k.v) {
			t.Errorf("%s.FromBits(%#x) = %g, want %g", k.d, k.bits, got, k.v)
		}
		if got := k.d.ToBits(k.v); got != k.bits {
			t.Errorf("%s.ToBits(%g) = %#x, want %#x", k.d, k.v, got, k.bits)
		}
	}
	// Values that are not representable are rounded first.
	if got := moe.BF16.ToBits(1 + 0x1p-8); got != 0x3f80 {
		t.Errorf("BF16.ToBits(1 + 2^-8) = %#x, want 0x3f80 (tie to even)", got)
	}
}

// TestDTypeConstants checks the per-dtype constants and parsing.
func TestDTypeConstants(t *testing.T) {
	tests := []struct {
		d                         moe.DType
		name                      string
		u, max, minNormal, minSub float64
		bits                      int
	}{
		{moe.BF16, "bf16", 0x1p-8, 0x1.fep127, 0x1p-126, 0x1p-133, 16},
		{moe.FP16, "fp16", 0x1p-11, 65504, 0x1p-14, 0x1p-24, 16},
		{moe.FP32, "fp32", 0x1p-24, math.MaxFloat32, 0x1p-126, 0x1p-149, 32},
	}
	for _, tt := range tests {
		d := tt.d
		if d.String() != tt.name || d.UnitRoundoff() != tt.u || d.MaxFinite() != tt.max || d.MinNormal() != tt.minNormal ||
			d.MinSubnormal() != tt.minSub || d.Bits() != tt.bits || !d.Valid() {
			t.Errorf("%s: constants %v %v %v %v %v %v", tt.name, d.String(), d.UnitRoundoff(), d.MaxFinite(), d.MinNormal(), d.MinSubnormal(), d.Bits())
		}
		if p, err := moe.ParseDType(" " + tt.name + " "); err != nil || p != d {
			t.Errorf("ParseDType(%q) = %v, %v", tt.name, p, err)
		}
		if got := d.Ulp(1); got != 2*tt.u {
			t.Errorf("%s.Ulp(1) = %g, want %g", d, got, 2*tt.u)
		}
		if got := d.Ulp(0); got != tt.minSub {
			t.Errorf("%s.Ulp(0) = %g, want MinSubnormal %g", d, got, tt.minSub)
		}
	}
	if _, err := moe.ParseDType("fp8"); err == nil {
		t.Error("ParseDType(fp8) succeeded")
	}
	if moe.DType(7).Valid() || moe.DType(7).String() != "dtype(7)" {
		t.Error("DType(7) should be invalid")
	}
}
