package cuda

import (
	"bytes"
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

// encodeTo's loops must give moe.DType.PutBits's bits: every bf16 and fp16 value (±0,
// subnormals, ±Inf, NaN payloads), values between them, random float64s, fp32 values, NaNs.
func TestEncodeMatchesPutBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var vals []float64
	for b := 0; b < 1<<16; b++ {
		vals = append(vals, float64(math.Float32frombits(uint32(b)<<16)))   // every bf16
		vals = append(vals, float64(math.Float32frombits(uint32(b)<<16|1))) // just above: rounds
	}
	for i := 0; i < 1<<15; i++ {
		vals = append(vals, float64(math.Float32frombits(rng.Uint32())), math.Float64frombits(rng.Uint64()), rng.NormFloat64())
	}
	vals = append(vals, 0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), math.MaxFloat64, 5e-324, 65504, 65520, 1e-8)
	for _, d := range moe.DTypes() {
		// Windows of decodeSerial values (the loops) over all of vals, then all at once
		// (PutBits over the cores), a short one and none.
		var windows [][]float64
		for off := 0; off < len(vals); off += decodeSerial {
			windows = append(windows, vals[off:min(off+decodeSerial, len(vals))])
		}
		windows = append(windows, vals, vals[len(vals)-100:], nil)
		for _, v := range windows {
			n := len(v)
			w := d.Bits() / 8
			got := encodeTo(make([]byte, n*w), d, v)
			want := make([]byte, n*w)
			d.PutBits(want, v)
			for i := 0; i < n; i++ {
				if !bytes.Equal(got[i*w:(i+1)*w], want[i*w:(i+1)*w]) {
					t.Fatalf("%s, %d values: value %d (%v, %#x): bits %x, want %x", d, n, i, v[i], math.Float64bits(v[i]),
						got[i*w:(i+1)*w], want[i*w:(i+1)*w])
				}
			}
		}
	}
}
