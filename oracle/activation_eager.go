package oracle

import (
	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/moe"
)

// The activation as PyTorch eager ops compute it (contract.Contract.Activation other than
// AsPath): every op computes in fp32 ("opmath") and stores its result — in the dtype for
// bf16/fp16 tensors — before the next op reads it. Read from transformers' grouped_mm experts
// path and PyTorch's CUDA kernels (docs/oracle.md §9):
//
//	SwiGLU   s = F.silu(g) = g/(1+exp(−g));  a = s·u
//	         d_s = da·u;  d_u = da·s;  d_g = silu_backward(d_s, g) = (d_s·σ)·(1 + g·(1−σ))
//	gpt-oss  g = min(gate, 7); u = clamp(up, ±7); t = g·1.702; σ = sigmoid(t) = 1/(1+exp(−t));
//	         glu = g·σ; u1 = u+1; a = u1·glu
//	         d_u1 = da·glu; d_glu = da·u1; d_g1 = d_glu·σ; d_σ = d_glu·g;
//	         d_t = (d_σ·(1−σ))·σ  (sigmoid_backward: (1−σ), d_σ·(1−σ) and ·σ each stored);
//	         d_g2 = d_t·1.702;
//	         d_g = [gate ≤ 7]·(d_g1 + d_g2); d_u = [−7 ≤ up ≤ 7]·d_u1
//
// Each named intermediate is stored with the contract's rounding (fp32, dtype or either); the
// final results are stored by the stage's own rounding. Either also admits docs/path.md's
// fused expression (the hull of both).

// actForwardC is actForward under the contract's activation freedom.
func (a arith) actForwardC(act moe.Activation, d moe.DType, how contract.Rounding, gate, up rv) rv {
	a.loose = true
	if how == contract.AsPath || a.math {
		return a.actForward(act, gate, up)
	}
	x := splitGate(gate, func(g rv) rv { return a.eagerForward(act, d, how, g, up) })
	if how == contract.Either {
		return hullRV(x, a.actForward(act, gate, up))
	}
	return x
}

// actBackwardC is actBackward under the contract's activation freedom.
func (a arith) actBackwardC(act moe.Activation, d moe.DType, how contract.Rounding, gate, up, da rv) (rv, rv) {
	a.loose = true
	if how == contract.AsPath || a.math {
		return a.actBackward(act, gate, up, da)
	}
	dg, du := splitGate2(gate, func(g rv) (rv, rv) { return a.eagerBackward(act, d, how, g, up, da) })
	if how == contract.Either {
		pg, pu := a.actBackward(act, gate, up, da)
		return hullRV(dg, pg), hullRV(du, pu)
	}
	return dg, du
}

func (a arith) eagerForward(act moe.Activation, d moe.DType, how contract.Rounding, gate, up rv) rv {
	st := func(x rv) rv { return storeAs(d, x, how, contract.InFP32) }
	if act == moe.GptOss {
		g := minRV(gate, moe.GptOssLimit)
		u := maxRV(minRV(up, moe.GptOssLimit), -moe.GptOssLimit)
		t := st(a.mul(g, alphaRV))
		sig := st(a.recipOnePlusExp(one, negRV(t)))
		glu := st(a.mul(g, sig))
		u1 := st(a.add(u, one))
		return a.mul(u1, glu)
	}
	s := st(a.recipOnePlusExp(gate, negRV(gate)))
	return a.mul(s, up)
}

func (a arith) eagerBackward(act moe.Activation, d moe.DType, how contract.Rounding, gate, up, da rv) (rv, rv) {
	st := func(x rv) rv { return storeAs(d, x, how, contract.InFP32) }
	if act == moe.GptOss {
		g := minRV(gate, moe.GptOssLimit)
		u := maxRV(minRV(up, moe.GptOssLimit), -moe.GptOssLimit)
		t := st(a.mul(g, alphaRV))
		sig := st(a.recipOnePlusExp(one, negRV(t)))
		glu := st(a.mul(g, sig))
		u1 := st(a.add(u, one))
		du1 := st(a.mul(da, glu))
		dglu := st(a.mul(da, u1))
		dg1 := st(a.mul(dglu, sig))
		dsig := st(a.mul(dglu, g))
		// sigmoid_backward's CUDA kernel for real dtypes is `a * (scalar_t(1.) - b) * b` in
		// scalar_t arithmetic: for bf16/fp16 each of the three ops rounds to the dtype.
		dt := st(a.mul(st(a.mul(dsig, st(a.sub(one, sig)))), sig))
		dg2 := st(a.mul(dt, alphaRV))
		dg := a.add(dg1, dg2)
		return indicator(gate, moe.GptOssLimit, true, dg), indicator(up, moe.GptOssLimit, false, du1)
	}
	s := st(a.recipOnePlusExp(gate, negRV(gate)))
	ds := st(a.mul(da, up))
	du := a.mul(da, s)
	sig := a.recipOnePlusExp(one, negRV(gate))
	dg := a.mul(a.mul(ds, sig), a.add(one, a.mul(gate, a.sub(one, sig))))
	return dg, du
}
