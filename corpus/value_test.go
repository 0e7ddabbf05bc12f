package corpus

import (
	"math"
	"testing"
)

func TestValueSyntax(t *testing.T) {
	f32nan := func(b uint32) float64 { return float64(math.Float32frombits(b)) }
	for _, tc := range []struct {
		name string
		v    float64
		text string
	}{
		{"nan/quiet", f32nan(0x7fc00000), "nan"},
		{"nan/float64-low-bit", math.NaN(), "nan"},
		{"nan/negative", f32nan(0xffc00000), "-nan"},
		{"nan/payload", f32nan(0x7fd50000), "nan:0x7fd50000"},
		{"nan/negative-payload", f32nan(0xffe00000), "nan:0xffe00000"},
		{"inf/positive", math.Inf(1), "inf"},
		{"inf/negative", math.Inf(-1), "-inf"},
		{"zero/negative", math.Copysign(0, -1), "-0"},
		{"zero/positive", 0, "0"},
		{"finite/half", 0.5, "0.5"},
		{"finite/bf16-subnormal", math.Ldexp(1, -133), "9.183549615799121e-41"},
		{"finite/fp32-max", float64(math.MaxFloat32), "3.4028234663852886e+38"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := formatValue(tc.v); got != tc.text {
				t.Fatalf("formatValue(%v) = %q, want %q", tc.v, got, tc.text)
			}
			back, err := parseValue(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(tc.v) {
				if math.Float32bits(float32(back)) != math.Float32bits(float32(tc.v)) {
					t.Fatalf("parseValue(%q) has float32 bits %#08x", tc.text, math.Float32bits(float32(back)))
				}
			} else if math.Float64bits(back) != math.Float64bits(tc.v) {
				t.Fatalf("parseValue(%q) = %v, want %v", tc.text, back, tc.v)
			}
		})
	}
	for _, in := range []string{"+nan", "NaN", "NAN:0X7FC00000", "+Inf", "0x1p-133", "-0x0p0"} {
		if _, err := parseValue(in); err != nil {
			t.Errorf("parseValue(%q): %v", in, err)
		}
	}
}
