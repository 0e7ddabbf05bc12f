package poison

import (
	"math"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// TestSignatureRoundTrip: Of decodes every buffer's signature (the contract's
// gpu.Buffer.SignatureNaN), also after storage in every dtype, and nothing else.
func TestSignatureRoundTrip(t *testing.T) {
	for _, b := range gpu.Buffers() {
		for _, d := range moe.DTypes() {
			if math.Float32bits(b.SignatureNaN()) != math.Float32bits(NaN(b)) {
				t.Errorf("buffer=%s: NaN and SignatureNaN differ", b)
			}
			stored := d.RoundFloat32(b.SignatureNaN()) // the storage rounding keeps the payload
			if got, ok := Of(stored); !ok || got != b {
				t.Errorf("buffer=%s dtype=%s: Of(%#x) = %v %v", b, d, math.Float32bits(stored), got, ok)
			}
		}
	}
	for _, v := range []float32{0, 1, float32(math.NaN()), float32(math.Inf(1))} {
		if b, ok := Of(v); ok {
			t.Errorf("value=%v: Of = %s, want none", v, b)
		}
	}
}
