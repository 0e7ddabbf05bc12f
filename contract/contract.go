package contract

import (
	"fmt"
	"strings"
)

// Rounding says where a stage's intermediate value is kept. The zero value, AsPath, is the
// choice docs/path.md makes at that point (each Contract field says which one that is).
type Rounding uint8

const (
	AsPath  Rounding = iota // as docs/path.md specifies (see the field)
	InFP32                  // kept in fp32 (no rounding to the dtype at this point)
	InDtype                 // rounded to the case dtype (round to nearest even) at this point
	Either                  // either of the two: the enclosure is the hull of both
)

func (r Rounding) String() string {
	switch r {
	case AsPath:
		return "as-path"
	case InFP32:
		return "fp32"
	case InDtype:
		return "dtype"
	case Either:
		return "either"
	}
	return fmt.Sprintf("rounding(%d)", uint8(r))
}

// Sum is the freedom of a short sum (the K-slot combine, the gather's backward scatter-add,
// the bias gradients' index-add). The zero value is docs/path.md's: fp32 partial sums, in the
// path's order (k = 0..K−1 from +0; bias gradients in any order), one rounding at the end.
type Sum struct {
	// Acc: where the partial sums are kept. InDtype: rounded to the dtype after every add
	// (atomic adds into a dtype buffer); Either: each add may do either.
	Acc Rounding
	// AnyOrder: the terms may be added in any order (atomics, tree reductions).
	AnyOrder bool
}

// Promises are the bitwise guarantees of a path; where a promise is false, the corresponding
// metamorphic property may only compare within derived bounds.
type Promises struct {
	// Deterministic: two runs of the same case give bitwise identical results.
	Deterministic bool
	// BatchInvariant: a token's results do not depend on the other tokens of the batch
	// (the GEMM's accumulation order does not depend on the rows per group).
	BatchInvariant bool
	// PermutationInvariant: permuting the tokens permutes the results bitwise.
	PermutationInvariant bool
	// ZeroWeightIsSentinel: a slot routed to an expert with weight 0 gives bitwise the same
	// results as the sentinel (except its own weight gradient).
	ZeroWeightIsSentinel bool
}

// Contract is what a path may legitimately do, stage by stage, and what it promises.
//
// Always exact, under every contract (the oracle asserts these bitwise, whatever the
// fields): no NaN or Inf where the reference is finite, no surviving poison, output rows of
// all-sentinel tokens zero, weight gradients of experts without rows zero, routing-weight
// gradients of sentinel slots zero. GEMMs (GEMM 1 and 2, their dgrads and wgrads, d_rw)
// accumulate products of stored values in fp32 in any order, split-K and truncating tensor
// cores included (docs/oracle.md §2), unless ReducedPrecisionReduction lets the bf16/fp16
// GEMMs reduce their split-K partials in the dtype (§9.6).
//
// The zero value is the Exact contract without a name.
type Contract struct {
	// Name identifies the contract in verdicts and reports ("exact", "torch", "any").
	Name string

	// GEMMBias: where GEMM 1 and 2 add their bias. AsPath/InFP32: to the fp32 accumulator,
	// one rounding; InDtype: after the GEMM's output is rounded to the dtype, as a separate
	// elementwise add rounded again (torch: grouped_mm, then + bias[ids]).
	GEMMBias Rounding
	// Activation: how the activation (forward and backward) is evaluated.
	//   AsPath: one fp32 expression per docs/path.md, rounded once to the dtype.
	//   InFP32, InDtype: as PyTorch eager ops (SwiGLU: F.silu(g), then · up, and autograd's
	//     mul and silu backward; gpt-oss: clamp, ·1.702, sigmoid, ·, +1, · and their autograd
	//     backward, the two contributions to d_gate added), each op computed in fp32 and its
	//     result kept in fp32 (InFP32) or rounded to the dtype (InDtype).
	//   Either: any of the above, each eager op's result rounded either way.
	Activation Rounding
	// Weight: the routing-weight product o = h2·rw before the combine. AsPath/InDtype:
	// rounded to the dtype (stored); InFP32: kept in fp32 into the combine; Either: either.
	Weight Rounding
	// DRWProducts: the products d_o·h2 inside the routing-weight gradient's reduction.
	// AsPath/InFP32: fp32 products in one fused dot; InDtype: each product rounded to the
	// dtype first (torch: (d_o * h2).sum(-1)); Either: either.
	DRWProducts Rounding
	// Combine: the K-slot sum of y. Scatter: the K-slot sum of dX (the gather's backward).
	// BiasGrad: the index-add of dB1, dB2 over an expert's rows.
	Combine, Scatter, BiasGrad Sum
	// WGradSlots: the weight gradients dW1, dW2 may also be formed slot by slot, as autograd
	// forms them when the path gathers the weights per slot (transformers' batched_mm:
	// W[expert_ids], then one bmm per slot): each slot's outer product d_out ⊗ in is a GEMM
	// with a reduction of length 1, rounded to the dtype, and the gather's backward
	// (index_put_ with accumulate) adds an expert's per-slot products with this Sum's freedom
	// (CUDA: in fp32 with one rounding when a weight row has at most 32 elements, else in the
	// dtype, one rounding per add, in sorted slot order). The zero value admits only
	// docs/path.md's GEMM over the expert's rows (fp32 accumulation, one rounding); a non-zero
	// value admits either form (the enclosure is the hull of both).
	WGradSlots Sum
	// TF32: fp32 GEMM operands may be rounded (or truncated) to TF32 (10 explicit mantissa
	// bits) before the products (torch.backends.cuda.matmul.allow_tf32).
	TF32 bool
	// ReducedPrecisionReduction: per 16-bit dtype, GEMMs may reduce split-K partial sums in
	// the dtype (cuBLAS under torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction
	// and allow_fp16_reduced_precision_reduction, both on by default in PyTorch): the K
	// products are split into s ≥ 1 chunks (s unknown, at most K), each chunk accumulated in
	// fp32, rounded to the dtype, and the s partials added with a rounding to the dtype after
	// every add, in any order. The zero value admits fp32 accumulation only (docs/oracle.md
	// §9.6 derives the bound).
	ReducedPrecisionReduction Reduced

	Promises Promises
}

// Reduced says for which 16-bit dtypes a GEMM may reduce its split-K partial sums in the
// dtype (Contract.ReducedPrecisionReduction). fp32 GEMMs always accumulate in fp32.
type Reduced struct {
	BF16, FP16 bool
}

// String is the contract's name ("exact" for the unnamed zero value).
func (c Contract) String() string {
	if c.Name == "" {
		return "exact"
	}
	return c.Name
}

// The modifiers ByName accepts after a built-in contract's name ("torch+tf32+…"): library
// switches that add a freedom of operand precision or GEMM reduction (not rounding choices at a
// stage, which the built-ins fix).
const (
	ModTF32     = "tf32"                             // Contract.TF32
	ModRPR      = "reduced-precision-reduction"      // ReducedPrecisionReduction for bf16 and fp16
	ModRPRBF16  = "bf16-reduced-precision-reduction" // ReducedPrecisionReduction.BF16
	ModRPRFP16  = "fp16-reduced-precision-reduction" // ReducedPrecisionReduction.FP16
	maxModifier = 4                                  // more than this many "+" parts is an error
)

// Modifiers lists the modifiers ByName accepts.
func Modifiers() []string { return []string{ModTF32, ModRPR, ModRPRBF16, ModRPRFP16} }

// Exact is docs/path.md as written: every rounding point fixed, K-slot sums in fp32 in slot
// order; every promise bitwise. The default for gpu/sim and gpu/cuda.
func Exact() Contract {
	return Contract{Name: "exact", Promises: Promises{Deterministic: true, BatchInvariant: true, PermutationInvariant: true, ZeroWeightIsSentinel: true}}
}

// Torch is the path as PyTorch eager ops and torch._grouped_mm compute it in transformers'
// grouped_mm experts path (src/transformers/integrations/moe.py): the bias added after the
// grouped GEMM's rounding, the activation as separate eager ops each rounded to the dtype,
// the routing-weight gradient from dtype products summed in fp32, and the K-slot combine
// (index_add_), the gather's backward (index_put_ with accumulate) and the bias gradients
// either by atomic adds in the dtype (any order) or by the deterministic sorted fp32
// accumulation. The weight gradients come either from the grouped GEMM's wgrad or, as in
// transformers' batched_mm (which gathers the weights per slot), from per-slot products
// rounded to the dtype and added by the gather's backward (WGradSlots). At the elementwise boundaries (bias add, activation, d_rw products) it also
// admits the fused fp32 choice of docs/path.md (Either): torch.compile's Inductor fuses such
// ops and keeps the intermediates in fp32, and a path conforming to the exact contract must
// conform to torch too (so the catalog faults can be judged under torch with gpu/sim). The
// routing-weight product is rounded to the dtype before the combine, as in docs/path.md
// (`.to(dtype)` before index_add_). No promise is bitwise: atomics make reruns differ, and the
// GEMM library picks its tiling (and accumulation order) from the rows per group.
// docs/oracle.md §9 derives it and says where the reading of the code was unsure.
func Torch() Contract {
	return Contract{
		Name:        "torch",
		GEMMBias:    Either,
		Activation:  Either,
		Weight:      AsPath,
		DRWProducts: Either,
		Combine:     Sum{Acc: Either, AnyOrder: true},
		Scatter:     Sum{Acc: Either, AnyOrder: true},
		BiasGrad:    Sum{Acc: Either, AnyOrder: true},
		WGradSlots:  Sum{Acc: Either, AnyOrder: true},
	}
}

// Any lets every stage round either way and every reduction run in any order: the loosest
// contract whose bounds still derive from unit roundoff, reduction length and magnitudes
// (torch, plus the routing-weight product kept in fp32 into the combine). It
// does not admit TF32 (that is an operand precision, not a rounding choice: set TF32 to add
// it). No promise is bitwise.
func Any() Contract {
	return Contract{
		Name:        "any",
		GEMMBias:    Either,
		Activation:  Either,
		Weight:      Either,
		DRWProducts: Either,
		Combine:     Sum{Acc: Either, AnyOrder: true},
		Scatter:     Sum{Acc: Either, AnyOrder: true},
		BiasGrad:    Sum{Acc: Either, AnyOrder: true},
		WGradSlots:  Sum{Acc: Either, AnyOrder: true},
	}
}

// Names lists the built-in contracts.
func Names() []string { return []string{"exact", "torch", "any"} }

// ByName returns a built-in contract, optionally followed by modifiers joined with "+"
// (Modifiers: "torch+bf16-reduced-precision-reduction", "any+tf32"). The result's Name is
// the canonical spelling: the base, then the modifiers in Modifiers' order (both
// reduced-precision modifiers spelled as the one that sets both).
func ByName(name string) (Contract, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(name)), "+")
	if len(parts) > 1+maxModifier {
		return Contract{}, fmt.Errorf("contract: %q has %d modifiers (at most %d)", name, len(parts)-1, maxModifier)
	}
	var c Contract
	switch strings.TrimSpace(parts[0]) {
	case "exact", "":
		c = Exact()
	case "torch":
		c = Torch()
	case "any":
		c = Any()
	default:
		return Contract{}, fmt.Errorf("contract: unknown contract %q (want %s, optionally +%s)", name, strings.Join(Names(), ", "), strings.Join(Modifiers(), ", +"))
	}
	if len(parts) > 1 && strings.TrimSpace(parts[0]) == "" {
		return Contract{}, fmt.Errorf("contract: %q: a modifier needs a contract before it (%s)", name, strings.Join(Names(), ", "))
	}
	for _, m := range parts[1:] {
		switch strings.TrimSpace(m) {
		case ModTF32:
			c.TF32 = true
		case ModRPR:
			c.ReducedPrecisionReduction = Reduced{BF16: true, FP16: true}
		case ModRPRBF16:
			c.ReducedPrecisionReduction.BF16 = true
		case ModRPRFP16:
			c.ReducedPrecisionReduction.FP16 = true
		default:
			return Contract{}, fmt.Errorf("contract: unknown modifier %q in %q (want %s)", m, name, strings.Join(Modifiers(), ", "))
		}
	}
	c.Name = c.canonical(c.Name)
	return c, nil
}

// WithReduced returns c with the reduced-precision reduction freedom of r added (and its
// name spelled as ByName spells it).
func (c Contract) WithReduced(r Reduced) Contract {
	c.ReducedPrecisionReduction.BF16 = c.ReducedPrecisionReduction.BF16 || r.BF16
	c.ReducedPrecisionReduction.FP16 = c.ReducedPrecisionReduction.FP16 || r.FP16
	c.Name = c.canonical(strings.SplitN(c.String(), "+", 2)[0])
	return c
}

// canonical spells base with c's modifiers in Modifiers' order.
func (c Contract) canonical(base string) string {
	s := base
	if c.TF32 {
		s += "+" + ModTF32
	}
	switch r := c.ReducedPrecisionReduction; {
	case r.BF16 && r.FP16:
		s += "+" + ModRPR
	case r.BF16:
		s += "+" + ModRPRBF16
	case r.FP16:
		s += "+" + ModRPRFP16
	}
	return s
}
