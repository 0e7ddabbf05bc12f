package simtorch

import "github.com/moecheck/moecheck/moe"

// The activation as PyTorch eager ops: each op computes in fp32 and stores in the dtype.
// SwiGLU: s = F.silu(g) = g/(1+exp(−g)); a = s·u. Backward (autograd): d_s = da·u,
// d_u = da·s, d_g = silu_backward(d_s, g) = (d_s·σ)·(1 + g·(1−σ)).
// gpt-oss (transformers' _apply_gate): g = gate.clamp(max=7), u = up.clamp(±7),
// glu = g·sigmoid(g·1.702), a = (u+1)·glu; backward through each op, the two gradients of g
// added, then the clamps' where(cond, grad, 0).

func (r *run) silu(g float32) float32 { return r.round(g / (1 + expf(-g))) }

func (r *run) sigmoid(t float32) float32 { return r.round(1 / (1 + expf(-t))) }

const alpha = float32(moe.GptOssAlpha)

func (r *run) actForward(gate, up float32) float32 {
	if !r.fr.eagerAct {
		return r.pathForward(gate, up)
	}
	if r.c.Act == moe.GptOss {
		g, u := min(gate, moe.GptOssLimit), max(min(up, moe.GptOssLimit), -moe.GptOssLimit)
		t := r.round(g * alpha)
		sig := r.sigmoid(t)
		glu := r.round(g * sig)
		u1 := r.round(u + 1)
		return r.round(u1 * glu)
	}
	return r.round(r.silu(gate) * up)
}

func (r *run) actBackward(gate, up, da float32) (float32, float32) {
	if !r.fr.eagerAct {
		return r.pathBackward(gate, up, da)
	}
	if r.c.Act == moe.GptOss {
		g, u := min(gate, moe.GptOssLimit), max(min(up, moe.GptOssLimit), -moe.GptOssLimit)
		t := r.round(g * alpha)
		sig := r.sigmoid(t)
		glu := r.round(g * sig)
		u1 := r.round(u + 1)
		du1 := r.round(da * glu)
		dglu := r.round(da * u1)
		dg1 := r.round(dglu * sig)
		dsig := r.round(dglu * g)
		// sigmoid_backward: `a * (scalar_t(1.) - b) * b` in scalar_t, each op rounded.
		dt := r.round(r.round(dsig*r.round(1-sig)) * sig)
		dg2 := r.round(dt * alpha)
		dg := r.round(dg1 + dg2)
		if gate > moe.GptOssLimit {
			dg = 0
		}
		if up > moe.GptOssLimit || up < -moe.GptOssLimit {
			du1 = 0
		}
		return dg, du1
	}
	s := r.silu(gate)
	ds := r.round(da * up)
	du := r.round(da * s)
	sig := 1 / (1 + expf(-gate))
	dg := r.round(ds * sig * (1 + float32(gate*(1-sig))))
	return dg, du
}

// pathForward and pathBackward are docs/path.md's fused fp32 expressions (one rounding).
func (r *run) pathForward(gate, up float32) float32 {
	if r.c.Act == moe.GptOss {
		g, u := min(gate, moe.GptOssLimit), max(min(up, moe.GptOssLimit), -moe.GptOssLimit)
		glu := g / (1 + expf(-float32(alpha*g)))
		return r.round((u + 1) * glu)
	}
	return r.round(gate / (1 + expf(-gate)) * up)
}

func (r *run) pathBackward(gate, up, da float32) (float32, float32) {
	if r.c.Act == moe.GptOss {
		g, u := min(gate, moe.GptOssLimit), max(min(up, moe.GptOssLimit), -moe.GptOssLimit)
		ag := float32(alpha * g)
		sig := 1 / (1 + expf(-ag))
		dglu := sig + float32(ag*float32(sig*(1-sig)))
		dg := float32(da*(u+1)) * dglu
		du := float32(da*g) * sig
		if gate > moe.GptOssLimit {
			dg = 0
		}
		if up > moe.GptOssLimit || up < -moe.GptOssLimit {
			du = 0
		}
		return r.round(dg), r.round(du)
	}
	sig := 1 / (1 + expf(-gate))
	dg := float32(float32(da*up)*sig) * (1 + float32(gate*(1-sig)))
	du := float32(da*gate) * sig
	return r.round(dg), r.round(du)
}
