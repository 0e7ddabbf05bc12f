package sim

import (
	"math"

	"github.com/moecheck/moecheck/moe"
)

// gpt-oss constants in float32, as an fp32 kernel holds them.
const (
	alpha32 = float32(moe.GptOssAlpha)
	limit32 = float32(moe.GptOssLimit)
)

// expf is exp in float32: the float64 exponential rounded to float32 (within the spec's
// 2-ulp allowance for expf).
func expf(x float32) float32 { return float32(math.Exp(float64(x))) }

// cols returns the gate and up column of activation column j in GEMM 1's output (docs/path.md
// step 6), swapped under fault GateUpSwapped.
func cols(c moe.Config, f faults, j int) (gate, up int) {
	gate, up = c.GateCol(j), c.UpCol(j)
	if f.gateUpSwapped { // fault GateUpSwapped: the activation reads each half as the other
		gate, up = up, gate
	}
	return gate, up
}

// activateRows is docs/path.md step 6 (the activation) on rows [lo, hi):
// act[i,j] = round_d(a(h1[i,gate], h1[i,up])).
//
// The value is a function of the bits of (gate, up) alone; the sentinel tail's rows (most
// rows of a rank of a large expert-parallel world) are +0 (mask B), so that element is
// computed once per call and reused.
func (st *state) activateRows(lo, hi int) {
	c, f := st.cfg, st.f
	I, I2, d := c.I, 2*c.I, c.DType
	var zero float32
	haveZero := false
	for i := lo; i < hi; i++ {
		h, a := st.h1[i*I2:(i+1)*I2], st.act[i*I:(i+1)*I]
		for j := range a {
			gc, uc := cols(c, f, j)
			g, u := h[gc], h[uc]
			posZero := math.Float32bits(g)|math.Float32bits(u) == 0
			if posZero && haveZero {
				a[j] = zero
				continue
			}
			var v float32
			if c.Act == moe.GptOss {
				if g > limit32 { // min(g, 7); NaN stays NaN
					g = limit32
				}
				u = clamp(u)
				v = (u + 1) * (g / (1 + expf(-(alpha32 * g))))
			} else {
				v = g / (1 + expf(-g)) * u
			}
			a[j] = v
			if posZero {
				zero, haveZero = d.RoundFloat32(v), true
			}
		}
		roundAll(d, a) // round_d(v) element by element (zero's value is already rounded: roundAll keeps it)
	}
}

// activateBackwardRows is docs/path.md step 15 (the activation backward) on rows [lo, hi):
// d_h1 from d_act and h1.
//
// Products that feed an add are converted to float32 explicitly so that no platform fuses
// them into an FMA (the result is then the same on every machine).
//
// gpt-oss's clamp gradients select, as docs/path.md specifies (torch.clamp's backward is
// where(cond, grad, 0)): a clamped-away input gets exactly 0, even where grad is NaN or Inf.
// Products are evaluated left to right: ((d_act·…)·…)·….
func (st *state) activateBackwardRows(lo, hi int) {
	c, f := st.cfg, st.f
	I, I2, d := c.I, 2*c.I, c.DType
	for i := lo; i < hi; i++ {
		h, da, dh := st.h1[i*I2:(i+1)*I2], st.dact[i*I:(i+1)*I], st.dh1[i*I2:(i+1)*I2]
		for j, dj := range da {
			gc, uc := cols(c, f, j)
			hg, hu := h[gc], h[uc]
			var dg, du float32
			if c.Act == moe.GptOss {
				g, u := hg, clamp(hu)
				if g > limit32 {
					g = limit32
				}
				s := 1 / (1 + expf(-(alpha32 * g)))
				if hg <= limit32 { // NaN fails both comparisons: gradient 0
					dg = dj * (u + 1) * (s + float32(alpha32*g*s*(1-s)))
				}
				if hu >= -limit32 && hu <= limit32 {
					du = dj * g * s
				}
			} else {
				g, u := hg, hu
				s := 1 / (1 + expf(-g))
				dg = dj * u * s * (1 + float32(g*(1-s)))
				du = dj * g * s
			}
			dh[gc], dh[uc] = dg, du
		}
		roundAll(d, dh) // round_d element by element (gate and up columns cover the row)
	}
}

// clamp is clamp(u, −7, 7) with NaN passing through.
func clamp(u float32) float32 {
	if u > limit32 {
		return limit32
	}
	if u < -limit32 {
		return -limit32
	}
	return u
}
