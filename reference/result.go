package reference

import "github.com/moecheck/moecheck/moe"

// Result is the float64 truth for one case (or, from Magnitude, the magnitudes bounding
// it). Tensors follow the case's layout, like gpu.Result:
//
//	Y, DX  T×H            output and gradient of the hidden states
//	DW1    like W1        gradient of gate_up_proj (E×2I×H or E×H×2I)
//	DW2    like W2        gradient of down_proj (E×H×I or E×I×H)
//	DB1    E×2I, DB2 E×H  bias gradients (nil without biases)
//	DRW    T×K            gradient of the routing weights, in slot order
type Result struct {
	Y, DX, DW1, DB1, DW2, DB2, DRW []float64
	// Plan is the canonical routing plan the computation used (stable sort of the ids).
	Plan *moe.Plan
	// Stages holds the intermediates when Options.Stages was set, else nil.
	Stages *Stages
}

// Stages are the intermediates of docs/path.md, S = T·K rows each in sorted-row order (row
// i holds slot Plan.Perm[i]). Rows in the sentinel tail (i ≥ Plan.Rows) are +0 in every
// stage except DO. Widths: H for Xs, H2, O, DO, DH2, DXs; 2I for H1, DH1; I for Act, DAct.
type Stages struct {
	Xs   []float64 // S×H   gathered input (after mask A)
	H1   []float64 // S×2I  GEMM 1 output, bias included (after mask B)
	Act  []float64 // S×I   activation
	H2   []float64 // S×H   GEMM 2 output, bias included (after mask C)
	O    []float64 // S×H   weighted rows rw·h2
	DO   []float64 // S×H   gathered dY (all rows)
	DRW  []float64 // S     routing-weight gradient by sorted row (Result.DRW in slot order)
	DH2  []float64 // S×H   gradient of GEMM 2's output, rw·d_o
	DAct []float64 // S×I   GEMM 2 dgrad
	DH1  []float64 // S×2I  activation backward (after mask B's backward)
	DXs  []float64 // S×H   GEMM 1 dgrad (after mask A's backward)
}
