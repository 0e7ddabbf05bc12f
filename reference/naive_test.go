package reference_test

import (
	"math"

	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// This file is an independent, deliberately plain model of the layer for the proofs: slot
// by slot, no sort, no BLAS, indexing through moe.Config's layout helpers. The finite
// difference checks differentiate it, and Run's forward is compared with it.
//
// Every sum of the model is compensated (Neumaier), so its error is at most
// 2u·|s| + 2γ_n²·Σ|terms| plus u·|term| per rounded product: ≤ 3u·Σ|terms| for any n below
// 2^26 (then 2γ_n² ≤ 2⁻²⁶·u). This keeps the rounding of the loss, which the difference
// quotients divide by h, independent of the sizes (see lossRounding).

const (
	// u64 is float64's unit roundoff 2⁻⁵³.
	u64 = 0x1p-53
	// supSilu2 and supSilu3 bound |silu''| and |silu'''| on ℝ: silu''(0) = 1/2 is the
	// maximum of |silu''|, and |silu'''| peaks at x ≈ −1.032 with 0.308181516 (found by a
	// 10⁻⁵ grid scan of the closed form; rounded up).
	supSilu2 = 0.5
	supSilu3 = 0.3082
)

// gamma is γ_n = n·u/(1 − n·u), the worst-case relative error factor of a float64 sum or
// product chain of n operations (Higham, ANCHORS §4).
func gamma(n int) float64 { return float64(n) * u64 / (1 - float64(n)*u64) }

func sig(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// ksum is a Neumaier (improved Kahan–Babuška) compensated sum.
type ksum struct{ s, c float64 }

func (k *ksum) add(x float64) {
	t := k.s + x
	if math.Abs(k.s) >= math.Abs(x) {
		k.c += (k.s - t) + x
	} else {
		k.c += (x - t) + k.s
	}
	k.s = t
}

func (k *ksum) sum() float64 { return k.s + k.c }

// fwdPropagation bounds the factor by which an error δ ≤ ε·M of GEMM 1's output (gate or
// up) reaches the activation, relative to ε·M(act): the gate term is
// |∂act/∂g|·δ_g ≤ 1.1·U·ε·M_g against M(act) = U·m·σ(αm) (m = min(M_g, 7)), a ratio
// ≤ 1.1/σ(αm) ≤ 2.2 for M_g ≤ 7 and ≤ 1.1·M_g/(7σ(7α)) < M_g/6 beyond; the up term
// |silu(g)|·δ_u ≤ ε·M(act). So 4 + max M(h1)/6 holds for both activations.
func fwdPropagation(mag *reference.Result) float64 { return 4 + maxAbs(mag.Stages.H1)/6 }

// lossRounding bounds the float64 error of naiveLoss: ≤ 3u·Σ|terms| at each compensated
// sum (h1 with bias, h2 with bias, the K-slot combine, the loss), u per product rw·h2, and
// ≤ 8u·|act| for the activation's own evaluation (exp ≤ 1 ulp, then ≤ 6 roundings), each
// carried to the loss with factor ≤ fwdPropagation through the activation and 1 elsewhere
// relative to the magnitudes. Summing: (3·P + 8 + 3 + 1 + 3 + 3)·u·M_L ≤ (3P + 24)·u·M_L.
func lossRounding(c *moe.Case, mag *reference.Result) float64 {
	return (3*fwdPropagation(mag) + 24) * u64 * lossMagnitude(c, mag.Y)
}

// naiveH1 is GEMM 1's output row (2I) for slot s, whose expert must be real.
func naiveH1(c *moe.Case, s int) []float64 {
	e, t := int(c.Routing.IDs[s]), s/c.K
	h1 := make([]float64, 2*c.I)
	for j := range h1 {
		var acc ksum
		for h := 0; h < c.H; h++ {
			acc.add(c.X[t*c.H+h] * c.W1[c.W1Index(e, j, h)])
		}
		if c.Bias {
			acc.add(c.B1[e*2*c.I+j])
		}
		h1[j] = acc.sum()
	}
	return h1
}

// naiveAct is the activation of a GEMM-1 row, and the clamp state of every column pair
// (bit 0: gate > 7, bit 1: up < −7, bit 2: up > 7; always 0 for SwiGLU).
func naiveAct(c *moe.Case, h1 []float64) (act []float64, state []uint8) {
	act, state = make([]float64, c.I), make([]uint8, c.I)
	for j := range act {
		g, u := h1[c.GateCol(j)], h1[c.UpCol(j)]
		if c.Act == moe.SwiGLU {
			act[j] = g * sig(g) * u
			continue
		}
		if g > 7 {
			g, state[j] = 7, state[j]|1
		}
		if u < -7 {
			u, state[j] = -7, state[j]|2
		}
		if u > 7 {
			u, state[j] = 7, state[j]|4
		}
		act[j] = (u + 1) * g * sig(1.702*g)
	}
	return act, state
}

// naiveForward returns Y (T×H) and the concatenated clamp states of every real slot.
func naiveForward(c *moe.Case) (y []float64, states []uint8) {
	ys := make([]ksum, c.T*c.H)
	for s, id := range c.Routing.IDs {
		e, t := int(id), s/c.K
		if e == c.E {
			continue
		}
		act, st := naiveAct(c, naiveH1(c, s))
		states = append(states, st...)
		w := c.Routing.Weights[s]
		for h := 0; h < c.H; h++ {
			var acc ksum
			for j, a := range act {
				acc.add(a * c.W2[c.W2Index(e, h, j)])
			}
			if c.Bias {
				acc.add(c.B2[e*c.H+h])
			}
			ys[t*c.H+h].add(w * acc.sum())
		}
	}
	y = make([]float64, len(ys))
	for i := range ys {
		y[i] = ys[i].sum()
	}
	return y, states
}

// naiveLoss is L = Σ dY·Y with the clamp states.
func naiveLoss(c *moe.Case) (float64, []uint8) {
	y, st := naiveForward(c)
	var l ksum
	for i, v := range y {
		l.add(c.DY[i] * v)
	}
	return l.sum(), st
}

// naiveDAct is ∂L/∂act for slot s (real): Σ_h rw·dY[t,h]·W2[e,h,j]. It does not depend on
// X, W1 or B1, which is what makes L, as a function of one of those, a sum of
// d_act·act(g, u) with g and u affine in it (see thirdDerivBound).
func naiveDAct(c *moe.Case, s int) []float64 {
	e, t := int(c.Routing.IDs[s]), s/c.K
	d := make([]float64, c.I)
	for j := range d {
		var acc float64
		for h := 0; h < c.H; h++ {
			acc += c.Routing.Weights[s] * c.DY[t*c.H+h] * c.W2[c.W2Index(e, h, j)]
		}
		d[j] = acc
	}
	return d
}

// thirdDerivBound bounds |d³L/dε³| on [−step, step] when X, W1 and B1 move along a
// direction that changes GEMM 1's output of slot s by dh1(s) per unit ε (nil: unchanged).
//
// L(ε) = Σ_s Σ_j d_act[s,j]·φ(g + a·ε, u + b·ε) + (terms without ε), a = dh1[gate],
// b = dh1[up]. For SwiGLU φ = silu(g)·u, so φ”' = a³·silu”'(g)·u + 3a²b·silu”(g). For
// gpt-oss, away from the clamp points, φ = (u+1)·q(g) with q(g) = g·σ(αg), q” = α·silu”(αg),
// q”' = α²·silu”'(αg); a clamped argument is constant, which only removes terms. Hence
// |φ”'| ≤ |a|³·S3·U + 3a²|b|·S2 with S3 = α²·sup|silu”'|, S2 = α·sup|silu”| (α = 1 for
// SwiGLU) and U ≥ |u (+1)| over the interval: |u| + |b|·step (+1).
func thirdDerivBound(c *moe.Case, dh1 func(s int) []float64, step float64) float64 {
	alpha, plus := 1.0, 0.0
	if c.Act == moe.GptOss {
		alpha, plus = moe.GptOssAlpha, 1
	}
	s3, s2 := alpha*alpha*supSilu3, alpha*supSilu2
	var bound float64
	for s, id := range c.Routing.IDs {
		if int(id) == c.E {
			continue
		}
		d := dh1(s)
		if d == nil {
			continue
		}
		h1, dact := naiveH1(c, s), naiveDAct(c, s)
		for j, da := range dact {
			a, b := math.Abs(d[c.GateCol(j)]), math.Abs(d[c.UpCol(j)])
			if a == 0 {
				continue // φ is affine in ε
			}
			U := math.Abs(h1[c.UpCol(j)]) + b*step + plus
			bound += math.Abs(da) * (a*a*a*s3*U + 3*a*a*b*s2)
		}
	}
	return bound
}

// lossMagnitude is M_L = Σ |dY|·M(Y), which bounds Σ|terms| of L.
func lossMagnitude(c *moe.Case, my []float64) float64 {
	var m float64
	for i, v := range my {
		m += math.Abs(c.DY[i]) * v
	}
	return m
}
