package reference

import (
	"math"

	"github.com/moecheck/moecheck/moe"
)

// siluSlopeArgMax is x* ≈ 2.3994, where silu'(x) = σ(x)·(1 + x·(1−σ(x))) is largest (the
// second derivative of silu vanishes there: x*·tanh(x*/2) = 2; silu'(x*) ≈ 1.0998). silu'
// rises on [0, x*] and falls towards 1 beyond it, and |silu'(−x)| = |1 − silu'(x)| ≤ 1/2 ≤
// silu'(x) for x ≥ 0, so sup_{|x| ≤ M} |silu'(x)| = silu'(min(M, x*)).
const siluSlopeArgMax = 2.3993572805154675

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// siluSlope is silu'(x) = σ(x)·(1 + x·(1−σ(x))).
func siluSlope(x float64) float64 {
	s := sigmoid(x)
	return s * (1 + x*(1-s))
}

// siluSlopeBound is sup_{|x| ≤ m} |silu'(x)| for m ≥ 0 (see siluSlopeArgMax).
func siluSlopeBound(m float64) float64 { return siluSlope(math.Min(m, siluSlopeArgMax)) }

// activation evaluates the gated activation of one column pair (gate g, up u) and its
// backward, exactly or, with mag, as the magnitude envelopes documented in the package doc
// (then g, u and dact are magnitudes, ≥ 0).
type activation struct {
	kind moe.Activation
	mag  bool
}

// forward returns act(g, u).
func (a activation) forward(g, u float64) float64 {
	switch {
	case a.kind == moe.GptOss && a.mag:
		m := math.Min(g, moe.GptOssLimit)
		return (math.Min(u, moe.GptOssLimit) + 1) * (m * sigmoid(moe.GptOssAlpha*m))
	case a.kind == moe.GptOss:
		gc := math.Min(g, moe.GptOssLimit)
		uc := math.Max(math.Min(u, moe.GptOssLimit), -moe.GptOssLimit)
		return (uc + 1) * (gc * sigmoid(moe.GptOssAlpha*gc))
	default: // SwiGLU; silu(M_g)·M_u is the same formula on magnitudes
		return g * sigmoid(g) * u
	}
}

// backward returns (d_g, d_u) for upstream gradient dact.
func (a activation) backward(g, u, dact float64) (dg, du float64) {
	switch {
	case a.kind == moe.GptOss && a.mag:
		m := math.Min(g, moe.GptOssLimit)
		up := math.Min(u, moe.GptOssLimit) + 1
		return dact * up * siluSlopeBound(moe.GptOssAlpha*m), dact * (m * sigmoid(moe.GptOssAlpha*m))
	case a.kind == moe.GptOss:
		gc := math.Min(g, moe.GptOssLimit)
		uc := math.Max(math.Min(u, moe.GptOssLimit), -moe.GptOssLimit)
		s := sigmoid(moe.GptOssAlpha * gc)
		// torch.clamp's backward selects: where(input in the closed interval, grad, 0), so
		// a clamped-away input gets exactly 0 even when grad is NaN or Inf.
		if g <= moe.GptOssLimit {
			dg = dact * (uc + 1) * (s + moe.GptOssAlpha*gc*s*(1-s))
		}
		if u >= -moe.GptOssLimit && u <= moe.GptOssLimit {
			du = dact * gc * s
		}
		return dg, du
	case a.mag:
		return dact * u * siluSlopeBound(g), dact * (g * sigmoid(g))
	default:
		s := sigmoid(g)
		return dact * u * s * (1 + g*(1-s)), dact * g * s
	}
}

func indicator(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
