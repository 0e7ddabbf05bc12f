package corpus

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/moecheck/moecheck/moe"
)

// Float32 bits of the NaNs written as "nan" and "-nan".
const (
	nanBits    = 0x7FC00000
	negNaNBits = 0xFFC00000
)

// parseValue parses one value: a decimal or hexadecimal floating-point literal (its nearest
// float64, as strconv.ParseFloat gives it), inf, +inf, -inf, nan, -nan, or nan:0xHHHHHHHH (a
// quiet NaN given by its float32 bits, payload included).
func parseValue(s string) (float64, error) {
	l := strings.ToLower(s)
	switch {
	case l == "nan" || l == "+nan":
		return float64(math.Float32frombits(nanBits)), nil
	case l == "-nan":
		return float64(math.Float32frombits(negNaNBits)), nil
	case strings.HasPrefix(l, "nan:"):
		h := l[len("nan:"):]
		if !strings.HasPrefix(h, "0x") {
			return 0, fmt.Errorf("NaN bits %q: want nan:0x followed by 8 hex digits of the float32", s[len("nan:"):])
		}
		b, err := strconv.ParseUint(h[2:], 16, 32)
		if err != nil || len(h) != 10 {
			return 0, fmt.Errorf("NaN bits %q: want nan:0x followed by 8 hex digits of the float32", s[len("nan:"):])
		}
		if b&0x7F800000 != 0x7F800000 || b&0x007FFFFF == 0 {
			return 0, fmt.Errorf("float32 bits %#08x are not a NaN", b)
		}
		if b&0x00400000 == 0 {
			return 0, fmt.Errorf("float32 bits %#08x are a signaling NaN (quiet bit 0x00400000 clear): arithmetic quiets it, so it cannot be kept", b)
		}
		return float64(math.Float32frombits(uint32(b))), nil
	case strings.Contains(l, "nan"), strings.Contains(l, "infinity"):
		return 0, fmt.Errorf("invalid syntax (want nan, -nan, nan:0xHHHHHHHH, inf or -inf)")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) {
			if ne.Err == strconv.ErrRange {
				return 0, fmt.Errorf("out of the float64 range")
			}
			return 0, ne.Err
		}
		return 0, err
	}
	return v, nil
}

// formatValue writes a value so that parseValue reads it back: the shortest decimal that
// gives the float64 exactly, inf and -inf, and NaNs by their float32 bits (what a path
// stores): nan, -nan or nan:0xHHHHHHHH.
func formatValue(x float64) string {
	switch {
	case math.IsNaN(x):
		switch b := math.Float32bits(float32(x)); b {
		case nanBits:
			return "nan"
		case negNaNBits:
			return "-nan"
		default:
			return fmt.Sprintf("nan:%#08x", b)
		}
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// checkValue checks that a tensor value is a value of d that a path can store: finite unless
// nonFinite, exactly representable, and for a NaN a payload d keeps.
func checkValue(x float64, d moe.DType, nonFinite bool) error {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		if !nonFinite {
			return fmt.Errorf("non-finite values need \"nonfinite: yes\"")
		}
		if math.IsNaN(x) {
			b := math.Float32bits(float32(x))
			switch {
			case d == moe.BF16 && b&0xFFFF != 0:
				return fmt.Errorf("NaN payload %#08x is lost in bf16 storage (bf16 keeps float32 bits 16..31)", b)
			case d == moe.FP16 && b&0x1FFF != 0:
				return fmt.Errorf("NaN payload %#08x is lost in fp16 storage (fp16 keeps float32 bits 13..22 of the payload)", b)
			}
		}
		return nil
	}
	if !d.Representable(x) {
		return fmt.Errorf("not a %s value (nearest %s)", d, formatValue(d.Round(x)))
	}
	return nil
}

// checkWeight checks a routing weight: finite and a value of d.
func checkWeight(w float64, d moe.DType) error {
	if math.IsNaN(w) || math.IsInf(w, 0) {
		return fmt.Errorf("routing weights must be finite")
	}
	if !d.Representable(w) {
		return fmt.Errorf("not a %s value (nearest %s)", d, formatValue(d.Round(w)))
	}
	return nil
}
