package oracle

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/moe"
)

// tf32 truncates (trunc) or rounds to nearest even an fp32 value to 10 explicit mantissa bits.
func tf32(x float32, trunc bool) float32 {
	b := math.Float32bits(x)
	if !trunc {
		b += 1<<12 - 1 + (b>>13)&1
	}
	return math.Float32frombits(b &^ (1<<13 - 1))
}

// TestTF32Enclosure: an fp32 dot product whose operands were rounded or truncated to TF32
// lies in the enclosure that allows TF32 (tf32Widen), and falls outside the fp32 one for
// some elements (the freedom is needed).
func TestTF32Enclosure(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	outside := 0
	for n := 0; n < 200; n++ {
		k := 1 + rng.IntN(64)
		A, B := newMat(1, k), newMat(1, k)
		for l := 0; l < k; l++ {
			A.c[l] = float64(float32(rng.NormFloat64()))
			B.c[l] = float64(float32(rng.NormFloat64()))
		}
		var plain, wide rv
		reduce(moe.FP32, A, B, nil, func(_, _ int, c, r float64) { plain = rv{c, r} })
		reduce(moe.FP32, tf32Widen(A), tf32Widen(B), nil, func(_, _ int, c, r float64) { wide = rv{c, r} })
		for _, trunc := range []bool{false, true} {
			var s float32
			for l := 0; l < k; l++ {
				s += float32(tf32(float32(A.c[l]), trunc) * tf32(float32(B.c[l]), trunc))
			}
			if !inRV(wide, s) {
				t.Fatalf("k=%d trunc=%v: %v outside the TF32 enclosure %v±%v", k, trunc, s, wide.v, wide.e)
			}
			if !inRV(plain, s) {
				outside++
			}
		}
	}
	if outside == 0 {
		t.Error("no TF32 result fell outside the fp32 enclosure: the test cannot tell the freedom is needed")
	}
}

// TestSumTermsEnclosure: K-slot sums of dtype values added in any order, in fp32 (then one
// rounding) or with a rounding to the dtype after every add, lie in the enclosure sumTerms
// gives for Either in any order.
func TestSumTermsEnclosure(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, d := range moe.DTypes() {
		for n := 0; n < 3000; n++ {
			k := 1 + rng.IntN(8)
			c := make([]float64, k)
			for i := range c {
				c[i] = d.Round(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(20)-10)))
			}
			r := make([]float64, k)
			either := sumTerms(d, contract.Sum{Acc: contract.Either, AnyOrder: true}, c, r)
			ec, er := roundInto(d, either.v, either.e)
			for trial := 0; trial < 4; trial++ {
				perm := rng.Perm(k)
				var f32, dt float32
				for _, i := range perm {
					f32 += float32(c[i])
					dt = d.RoundFloat32(dt + float32(c[i]))
				}
				for _, got := range []float32{d.RoundFloat32(f32), dt} {
					if math.Abs(float64(got)-ec) > er {
						t.Fatalf("%s %v: sum %v outside %v±%v", d, c, got, ec, er)
					}
				}
			}
		}
	}
}
