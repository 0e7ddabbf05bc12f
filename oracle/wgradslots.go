package oracle

import (
	"math"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/moe"
)

// The per-slot form of the weight gradients (contract.Contract.WGradSlots; docs/oracle.md
// §9.5). A path that gathers the weights per slot (transformers' batched_mm:
// W[expert_ids], one bmm per slot) gets from autograd, for each element of dW[e],
//
//	t_s = fl_d(fl32(a_s·b_s))   for each of the n slots s of expert e (a GEMM with k = 1),
//	ŝ   = Σ_s t_s               added by the gather's backward, index_put_(accumulate=True):
//	                            in the dtype with a rounding after every add, or in fp32 with
//	                            one rounding at the end (CUDA picks by the row length), any order,
//
// where a_s, b_s are the stored operands (d_out and in of docs/path.md's wgrad, enclosed by
// ã_s ± α_s and b̃_s ± β_s). With M⁺ = Σ_s (|ã_s|+α_s)(|b̃_s|+β_s) ≥ Σ_s |a_s b_s|:
//
//	|t_s − a_s b_s| ≤ δ·|a_s b_s| + η,  δ = u_d + u₃₂ + u_d·u₃₂,  η = MinNormal_d + (1+u_d)·2⁻¹²⁶
//	                                     (fp32 product rounding or underflow, then the dtype's
//	                                     rounding, subnormal results possibly flushed);
//	Σ_s |t_s| ≤ (1+δ)·M⁺ + n·η =: T;
//	|ŝ − Σ_s t_s| ≤ G·T + n·ν,  G = (1+u_d)^{n−1} − 1, ν = MinNormal_d  (dtype, any order:
//	                                     |ŝ_k| ≤ (1+u_d)|ŝ_{k−1} + t_k| at each add);
//	                            G = γ_{n−1}(u₃₂), ν = 2⁻¹²⁶           (fp32, any order);
//	                            Either: the larger of the two.
//
// So ŝ lies within r_gemm + δ·M⁺ + n·η + G·T + n·ν + (n+2)·2⁻⁵²·M⁺ of the GEMM form's center
// Σ ã_s b̃_s, where r_gemm (the GEMM form's radius: the operands' radii Σ(|ã|β + α|b̃| + αβ)
// plus its fp32 accumulation error) covers the operands' radii; the stored value is then
// enclosed by the dtype's rounding of that interval (idempotent on dtype values). Where a
// dtype partial sum may overflow (T·(1+G) + n·ν beyond the dtype's range, fp16 above all) or
// an fp32 one (beyond MaxFloat32) the element is unconstrained, as in sumTerms.

// slotMagnitudes returns M⁺ for every element of the nOut×nIn product A·Bᵀ (A nOut×n, B
// nIn×n, the operands of wgrad), or nil when the contract does not admit the per-slot form
// (or in the mathematical mode, where no rounding is enclosed).
func (en *encl) slotMagnitudes(A, B mat) []float64 {
	if en.ct.WGradSlots == (contract.Sum{}) || en.noRound || A.m == 0 || B.m == 0 {
		return nil
	}
	plus := func(m mat) []float64 {
		out := en.ar.get(len(m.c))
		for i, c := range m.c {
			out[i] = math.Abs(c) + m.r[i] // NaN radius stays NaN
		}
		return out
	}
	mp := en.ar.get(A.m * B.m)
	mulNT(A.m, B.m, A.k, plus(A), plus(B), mp)
	return mp
}

// slotsRadius widens the GEMM form's radius r of a weight-gradient element to cover the
// per-slot form as well (derivation above): n is the expert's number of slots, mp its M⁺.
// NaN when the element is unconstrained.
func slotsRadius(d moe.DType, s contract.Sum, n int, r, mp float64) float64 {
	if n <= 0 {
		return r
	}
	if math.IsNaN(r) || math.IsInf(r, 0) || math.IsNaN(mp) || math.IsInf(mp, 0) {
		return math.NaN()
	}
	ud := d.UnitRoundoff()
	delta := ud + u32 + ud*u32
	eta := d.MinNormal() + (1+ud)*tiny
	fn := float64(n)
	T := (1+delta)*mp + fn*eta
	fp32 := s.Acc == contract.AsPath || s.Acc == contract.InFP32 || s.Acc == contract.Either
	dt := s.Acc == contract.InDtype || s.Acc == contract.Either
	var acc float64
	if dt {
		g := math.Expm1(float64(n-1) * math.Log1p(ud))
		if T*(1+g)+fn*d.MinNormal() > d.MaxFinite() {
			return math.NaN() // a dtype partial sum may overflow
		}
		acc = g*T + fn*d.MinNormal()
	}
	if fp32 {
		g := float64(n-1) * u32
		if g >= 0.5 || T*(1+2*g) > math.MaxFloat32 {
			return math.NaN() // an fp32 partial sum may overflow
		}
		acc = math.Max(acc, g/(1-g)*T+fn*tiny)
	}
	return r + delta*mp + fn*eta + acc + float64(n+2)*0x1p-52*mp
}
