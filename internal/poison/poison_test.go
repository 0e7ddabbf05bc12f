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

// TestFillRangeIsValue: FillRange gives element from+j the value Value gives it with the
// element's draw (the per-element definition), for every policy, dtype and buffer, from any
// offset; the output starts NaN-poisoned so that an element left unwritten shows.
func TestFillRangeIsValue(t *testing.T) {
	policies := []gpu.Poison{gpu.PoisonZeros, gpu.PoisonNaN, gpu.PoisonPosInf, gpu.PoisonNegInf, gpu.PoisonHuge, gpu.PoisonStale, gpu.PoisonSignature}
	for _, p := range policies {
		for _, d := range moe.DTypes() {
			for _, b := range gpu.Buffers() {
				for _, from := range []int{0, 1, 37} {
					const seed = 0x5eed
					buf := make([]float32, 300)
					for i := range buf {
						buf[i] = float32(math.NaN())
					}
					FillRange(buf, from, p, b, d, seed)
					for j, got := range buf {
						want := Value(p, b, d, SplitMix64((seed^uint64(b)<<56)+uint64(from+j)))
						if p == gpu.PoisonZeros {
							want = 0
						}
						if math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("policy=%s dtype=%s buffer=%s from=%d: element %d = %#x, want %#x", p, d, b, from, j, math.Float32bits(got), math.Float32bits(want))
						}
					}
				}
			}
		}
	}
}
