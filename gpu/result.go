package gpu

import "github.com/moecheck/moecheck/moe"

// Result is what a path produced for one case. Values are float32 holding the dtype's values
// bit-exactly (bf16 and fp16 widen to float32 without loss, NaN payloads included), so the
// oracle can see a surviving signature NaN. Tensors follow the case's layout:
//
//	Y, DX  T×H            output and gradient of the hidden states
//	DW1    like W1        gradient of gate_up_proj (E×2I×H or E×H×2I)
//	DW2    like W2        gradient of down_proj (E×H×I or E×I×H)
//	DB1    E×2I, DB2 E×H  bias gradients (nil without biases)
//	DRW    T×K            gradient of the routing weights, in slot order
type Result struct {
	Y, DX, DW1, DB1, DW2, DB2, DRW []float32
	// Stages holds intermediates when RunOptions.Stages was set and the backend supports it.
	Stages *Stages
}

// Stages are the path's intermediates, rows in the path's sorted order (row i holds slot
// Perm[i]); see docs/path.md for each stage's definition.
type Stages struct {
	Perm    []int32 // sorted row → slot, as the path computed it
	Offsets []int32 // inclusive per-expert offsets, as the path computed them (length E)

	Xs   []float32 // S×H   gathered input (after mask A)
	H1   []float32 // S×2I  GEMM 1 output (after mask B)
	Act  []float32 // S×I   activation
	H2   []float32 // S×H   GEMM 2 output (after mask C)
	O    []float32 // S×H   weighted rows
	DO   []float32 // S×H   gathered dY
	DH2  []float32 // S×H   gradient of GEMM 2's output
	DAct []float32 // S×I   GEMM 2 dgrad
	DH1  []float32 // S×2I  activation backward (after mask B's backward)
	DXs  []float32 // S×H   GEMM 1 dgrad (after mask A's backward)
}

// Tensor returns the output or stage tensor t of r (nil for a tensor r does not carry: a
// stage without Stages, the plan, TensorCase). It is the one name→field accessor.
func (r *Result) Tensor(t moe.Tensor) []float32 {
	if p := r.field(t); p != nil {
		return *p
	}
	return nil
}

// SetTensor sets output or stage tensor t of r (allocating Stages for a stage); it reports
// false for a tensor Result has no field for.
func (r *Result) SetTensor(t moe.Tensor, v []float32) bool {
	if t.IsStage() && r.Stages == nil {
		r.Stages = &Stages{}
	}
	p := r.field(t)
	if p == nil {
		return false
	}
	*p = v
	return true
}

func (r *Result) field(t moe.Tensor) *[]float32 {
	switch t {
	case moe.TensorY:
		return &r.Y
	case moe.TensorDX:
		return &r.DX
	case moe.TensorDW1:
		return &r.DW1
	case moe.TensorDB1:
		return &r.DB1
	case moe.TensorDW2:
		return &r.DW2
	case moe.TensorDB2:
		return &r.DB2
	case moe.TensorDRW:
		return &r.DRW
	}
	if r.Stages != nil {
		return r.Stages.field(t)
	}
	return nil
}

// Tensor returns stage tensor t (nil for any other tensor).
func (s *Stages) Tensor(t moe.Tensor) []float32 {
	if p := s.field(t); p != nil {
		return *p
	}
	return nil
}

func (s *Stages) field(t moe.Tensor) *[]float32 {
	switch t {
	case moe.TensorXs:
		return &s.Xs
	case moe.TensorH1:
		return &s.H1
	case moe.TensorAct:
		return &s.Act
	case moe.TensorH2:
		return &s.H2
	case moe.TensorO:
		return &s.O
	case moe.TensorDO:
		return &s.DO
	case moe.TensorDH2:
		return &s.DH2
	case moe.TensorDAct:
		return &s.DAct
	case moe.TensorDH1:
		return &s.DH1
	case moe.TensorDXs:
		return &s.DXs
	}
	return nil
}
