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

// Tensor returns output or stage tensor t (nil for a tensor r does not carry). It is the one
// name→field accessor of a reference result.
func (r *Result) Tensor(t moe.Tensor) []float64 {
	switch t {
	case moe.TensorY:
		return r.Y
	case moe.TensorDX:
		return r.DX
	case moe.TensorDW1:
		return r.DW1
	case moe.TensorDB1:
		return r.DB1
	case moe.TensorDW2:
		return r.DW2
	case moe.TensorDB2:
		return r.DB2
	case moe.TensorDRW:
		return r.DRW
	}
	if s := r.Stages; s != nil {
		switch t {
		case moe.TensorXs:
			return s.Xs
		case moe.TensorH1:
			return s.H1
		case moe.TensorAct:
			return s.Act
		case moe.TensorH2:
			return s.H2
		case moe.TensorO:
			return s.O
		case moe.TensorDO:
			return s.DO
		case moe.TensorDRWSorted:
			return s.DRW
		case moe.TensorDH2:
			return s.DH2
		case moe.TensorDAct:
			return s.DAct
		case moe.TensorDH1:
			return s.DH1
		case moe.TensorDXs:
			return s.DXs
		}
	}
	return nil
}
