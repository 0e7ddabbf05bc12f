package moe

import (
	"math/bits"
	"math/rand/v2"
)

// u128 is an unsigned 128-bit integer: PCG's LCG state, and its arithmetic modulo 2^128.
type u128 struct{ hi, lo uint64 }

// The LCG of math/rand/v2's PCG (pcg.go, (*PCG).next): state ← state·pcgMul + pcgInc mod
// 2^128. Each Uint64 takes one step and outputs a function (DXSM) of the new state.
var (
	pcgMul = u128{2549297995355413924, 4865540595714422341}
	pcgInc = u128{6364136223846793005, 1442695040888963407}
)

// mul returns a·b mod 2^128.
func (a u128) mul(b u128) u128 {
	hi, lo := bits.Mul64(a.lo, b.lo)
	hi += a.hi*b.lo + a.lo*b.hi
	return u128{hi, lo}
}

// add returns a+b mod 2^128.
func (a u128) add(b u128) u128 {
	lo, c := bits.Add64(a.lo, b.lo, 0)
	hi, _ := bits.Add64(a.hi, b.hi, c)
	return u128{hi, lo}
}

// pcgJump returns the LCG state n steps after s, in O(log n) (Brown, "Random number
// generation with arbitrary strides", 1994; PCG's advance): n steps are the affine map
// s ↦ s·M + C with M = mul^n and C = inc·(mul^(n−1) + … + mul + 1), built from the maps of
// the powers of two steps that n's bits select.
func pcgJump(s u128, n uint64) u128 {
	accM, accC := u128{0, 1}, u128{}
	curM, curC := pcgMul, pcgInc // the map of 2^i steps
	for ; n > 0; n >>= 1 {
		if n&1 == 1 {
			accM = accM.mul(curM)
			accC = accC.mul(curM).add(curC)
		}
		curC = curM.add(u128{0, 1}).mul(curC)
		curM = curM.mul(curM)
	}
	return s.mul(accM).add(accC)
}

// pcgState reads p's LCG state through its binary encoding ("pcg:", then the high and low
// words big-endian); ok is false if the encoding is not that one.
func pcgState(p *rand.PCG) (s u128, ok bool) {
	var buf [20]byte
	b, err := p.AppendBinary(buf[:0])
	if err != nil || len(b) != 20 || string(b[:4]) != "pcg:" {
		return u128{}, false
	}
	be := func(b []byte) (x uint64) {
		for _, c := range b {
			x = x<<8 | uint64(c)
		}
		return x
	}
	return u128{be(b[4:12]), be(b[12:20])}, true
}

// pcgSteps says whether a PCG in state s steps as pcgJump models: the state after one Uint64
// is pcgJump(s, 1), and rand.NewPCG(hi, lo) is the PCG in state {hi, lo} (which normStream
// uses to start a decoder and to leave p at the stream's end). A Go release that changed
// PCG would fail it, and normStream would then draw serially rather than differently.
func pcgSteps(s u128) bool {
	q := *rand.NewPCG(s.hi, s.lo)
	if t, ok := pcgState(&q); !ok || t != s {
		return false
	}
	q.Uint64()
	t, ok := pcgState(&q)
	return ok && t == pcgJump(s, 1)
}
