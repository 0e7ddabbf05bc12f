package cuda

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// decode's loops must give moe.DType.Float32s's bits for every bf16 and fp16 pattern and for
// random fp32 patterns (NaN payloads included), small and large (the two paths).
func TestDecodeMatchesFloat32s(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name string
		d    moe.DType
		n    int
	}{
		{"bf16: every pattern", moe.BF16, 1 << 16},
		{"bf16: large", moe.BF16, decodeSerial + 77},
		{"fp16: every pattern", moe.FP16, 1 << 16},
		{"fp32: random", moe.FP32, 1 << 15},
		{"fp32: large", moe.FP32, decodeSerial + 5},
		{"fp32: empty", moe.FP32, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.d.Bits() / 8
			b := make([]byte, tc.n*w)
			for i := 0; i < tc.n; i++ {
				if w == 2 {
					binary.LittleEndian.PutUint16(b[2*i:], uint16(i))
				} else {
					binary.LittleEndian.PutUint32(b[4*i:], rng.Uint32())
				}
			}
			got := decode(tc.d, b)
			want := make([]float32, tc.n)
			tc.d.Float32s(want, b)
			if len(got) != len(want) {
				t.Fatalf("%d values, want %d", len(got), len(want))
			}
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("value %d: bits %#x, want %#x", i, math.Float32bits(got[i]), math.Float32bits(want[i]))
				}
			}
		})
	}
}
