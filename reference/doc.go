// Package reference computes moecheck's float64 truth for a case: the forward output and
// every gradient of the MoE expert layer, as the mathematical function of docs/path.md
// without its storage roundings (round_d) and fp32 accumulation (fl32), plus the stage
// intermediates in sorted-row order and a magnitude pass for error bounds.
//
// # Run
//
// Run(c, opts) validates the case and computes, for the loss L = Σ dY·Y:
//
//	Y    T×H   y[t,:] = Σ_{k : id(t,k) ≠ E} rw[t,k] · h2(t,k)
//	DX   T×H   ∂L/∂X
//	DW1  layout of W1, DB1 E×2I (nil without bias)
//	DW2  layout of W2, DB2 E×H  (nil without bias)
//	DRW  T×K   ∂L/∂rw, slot order
//
// where h2(t,k) = act(x[t]·W1[e]ᵀ + B1[e])·W2[e]ᵀ + B2[e] for the slot's local expert e.
// The GEMMs run per expert over the contiguous sorted rows of moe.Plan (a stable sort of
// the slots by id), with gonum's Dgemm, which splits each GEMM's output into 64×64 blocks
// over GOMAXPROCS goroutines (or, with the build tag openblas, OpenBLAS's cblas_dgemm on its
// own threads, whose bits depend on their count: internal/f64gemm); the reference's own
// loops over an expert's rows (gather, activation, routing-weight products, the |W| of the
// magnitude pass, the IEEE fallback GEMM) are split over rows and the combine and scatter-add
// over columns (par.go), each element computed by one goroutine in the single-goroutine
// order, so results are bitwise independent of the core count (TestSplitBitwise; with the
// tag openblas, for a given OpenBLAS thread count). Memory: the result, the plan and one
// expert's row buffers (all S rows with Options.Stages); nothing per goroutine.
//
// The results are float64 values of the exact function: each element is within γ_n·P·M of the exact value, with M its magnitude (below),
// γ_n = n·2⁻⁵³/(1 − n·2⁻⁵³) for the longest chain of n operations forming it (about
// S + H + 2I), and P ≤ 4·(1 + max M(h1)) the activation's amplification of earlier errors
// (derived in the tests' propagation()); far below any storage dtype's unit roundoff.
//
// Contracts that hold exactly (bitwise), whatever the data:
//   - a sentinel slot (id E) contributes nothing: its routing weight is never read, its
//     DRW is +0, and a token whose slots are all sentinels has Y = +0 and DX = +0;
//   - an expert with no rows has DW1, DW2, DB1, DB2 exactly +0;
//   - duplicate ids among a token's top-k are separate rows, each contributing.
//
// The activations are those of docs/path.md step 5/6 and 15. For gpt-oss the clamps are
// torch.clamp's: gate g' = min(g, 7), up u' = clamp(u, −7, 7); their gradients pass where
// g ≤ 7 and −7 ≤ u ≤ 7 (inclusive) and are multiplied by the 0/1 indicator otherwise, so
// d_g = [g ≤ 7]·(d_act·(u'+1)·(σ + 1.702·g'·σ·(1−σ))), d_u = [−7 ≤ u ≤ 7]·(d_act·g'·σ)
// with σ = sigmoid(1.702·g').
//
// Non-finite data (moe.Case.NonFinite) follows IEEE arithmetic as the path does: 0·Inf is
// NaN inside a GEMM (gonum's Dgemm skips zero multipliers, so GEMMs whose operands are not
// all finite fall back to a plain loop). Sentinel rows are still never computed, so the
// exact contracts above hold for non-finite data too.
//
// # Stages
//
// With Options.Stages the Result carries every intermediate of docs/path.md in sorted-row
// order (row i holds slot Plan.Perm[i]), S = T·K rows each, so a backend's stages can be
// compared stage by stage. Rows i ≥ Plan.Rows (the sentinel tail) are +0 in every stage
// except DO, which the path gathers for all rows (d_o[i] = dY[tok(i)]): in Xs, H1, H2, DH1
// and DXs this is the masks' value, in Act, O, DH2 and DRW it follows from them, and in
// DAct, which the path leaves unwritten there, it is the value the masks make irrelevant.
//
// # Magnitude
//
// Magnitude(c, opts) runs the same computation on absolute values and returns, in the same
// Result fields and stages, magnitudes M ≥ 0 that bound the exact values: for every
// element v of every tensor and stage, |v| ≤ M(v). Precisely:
//
//   - inputs: M(x) = |x|, M(w) = |w|, M(b) = |b|, M(dY) = |dY|, M(rw) = |rw|;
//   - sums (every GEMM, bias add, the K-slot combine of Y and DX, the per-expert sums of
//     DW1, DW2, DB1, DB2, and DRW = Σ_h d_o·h2): M is the sum over the terms of the product
//     of the factors' magnitudes, e.g. M(h1[i,j]) = Σ_h |xs[i,h]|·|W1[e,j,h]| + |B1[e,j]|.
//     So M bounds Σ|terms| — exactly the quantity the floating-point error of a sum of those
//     terms scales with (|fl(Σ) − Σ| ≤ γ_n·Σ|terms|, ANCHORS §4) — and hence |v|;
//   - elementwise products (o = rw·h2, d_h2 = rw·d_o): the product of the magnitudes;
//   - the activation and its backward, whose terms are not a sum: M is the supremum of the
//     absolute value over every input within its magnitude (|g| ≤ M_g, |u| ≤ M_u), taken
//     from monotone envelopes of |silu| and |silu'|. With silu(x) = x·σ(x) and
//     D(x) = silu'(min(x, x*)), x* = 2.3994 the maximiser of silu' (D ≤ 1.0998):
//     SwiGLU: M(act) = silu(M_g)·M_u, M(d_g) = M(d_act)·M_u·D(M_g),
//     M(d_u) = M(d_act)·silu(M_g);
//     gpt-oss, with m = min(M_g, 7), α = 1.702, G = m·σ(α·m) and U = min(M_u, 7) + 1:
//     M(act) = U·G, M(d_g) = M(d_act)·U·D(α·m), M(d_u) = M(d_act)·G.
//     The clamp indicators are taken as 1, so the bound holds on both sides of a clamp.
//
// Because every stage's magnitude bounds the exact value of its inputs, the magnitudes
// compose: M(h2) bounds Σ_j |act[i,j]|·|W2[e,h,j]| + |B2[e,h]| for the exact act, and
// likewise for every downstream sum. A rounding error bound for a backend's stage is then
// c·u·M for a small constant c and the dtype's unit roundoff u; the oracle derives c. The
// magnitude of a sentinel-tail row of every stage except DO, of a sentinel slot's DRW and of
// an empty expert's weight and bias gradients is +0.
package reference
