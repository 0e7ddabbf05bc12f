package moe

import "fmt"

// Tensor identifies one tensor of the path: an output of a run (what gpu.Result and
// reference.Result carry), a stage intermediate (docs/path.md), or a part of the routing
// plan. It is the one identity results, the oracle, triage, reports and the worker protocol
// share; its String is the name every output prints.
type Tensor uint8

// The tensors, outputs first, then the stages in path order, then the plan.
const (
	TensorNone Tensor = iota
	// Outputs (slot order for DRW).
	TensorY   // T×H output
	TensorDX  // T×H hidden-state gradient
	TensorDW1 // gate_up_proj gradient, like W1
	TensorDB1 // gate_up bias gradient, E×2I
	TensorDW2 // down_proj gradient, like W2
	TensorDB2 // down bias gradient, E×H
	TensorDRW // routing-weight gradient, T×K in slot order
	// Stages, rows in the path's sorted order.
	TensorXs        // S×H   gathered input
	TensorH1        // S×2I  GEMM 1 output
	TensorAct       // S×I   activation
	TensorH2        // S×H   GEMM 2 output
	TensorO         // S×H   weighted rows
	TensorDO        // S×H   gathered dY
	TensorDRWSorted // S     routing-weight gradient in sorted-row order (the path's d_rw buffer)
	TensorDH2       // S×H   gradient of GEMM 2's output
	TensorDAct      // S×I   GEMM 2 dgrad
	TensorDH1       // S×2I  activation backward
	TensorDXs       // S×H   GEMM 1 dgrad
	// The routing plan.
	TensorPerm    // S  sorted row → slot
	TensorOffsets // E  inclusive per-expert offsets
	// TensorCase stands for the case as a whole (a failure that is about no one tensor:
	// a case error, a result missing altogether, an invalid case).
	TensorCase
	numTensors
)

var tensorNameTable = [numTensors]string{"", "y", "dX", "dW1", "dB1", "dW2", "dB2", "drw",
	"xs", "h1", "act", "h2", "o", "d_o", "d_rw", "d_h2", "d_act", "d_h1", "d_xs", "perm", "offsets", "case"}

// String is the tensor's name ("y", "dX", "drw", "d_act", ...).
func (t Tensor) String() string {
	if t < numTensors {
		return tensorNameTable[t]
	}
	return fmt.Sprintf("tensor(%d)", uint8(t))
}

// MarshalText writes the name (so a Tensor in JSON reads as its name).
func (t Tensor) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads a name written by MarshalText.
func (t *Tensor) UnmarshalText(b []byte) error {
	x, ok := ParseTensor(string(b))
	if !ok {
		return fmt.Errorf("moe: unknown tensor %q", b)
	}
	*t = x
	return nil
}

// ParseTensor reads a tensor's name (the empty string is TensorNone).
func ParseTensor(s string) (Tensor, bool) {
	for i, n := range tensorNameTable {
		if n == s {
			return Tensor(i), true
		}
	}
	return TensorNone, false
}

// Output reports whether t is an output of a run (a field of gpu.Result).
func (t Tensor) Output() bool { return t >= TensorY && t <= TensorDRW }

// IsStage reports whether t is a stage intermediate (a float tensor of gpu.Stages).
func (t Tensor) IsStage() bool { return t >= TensorXs && t <= TensorDXs }

// Bias reports whether t exists only for cases with biases.
func (t Tensor) Bias() bool { return t == TensorDB1 || t == TensorDB2 }

// Outputs returns the output tensors in declaration order (biases included: leave them out
// for a case without biases with Tensor.Bias).
func Outputs() []Tensor {
	return []Tensor{TensorY, TensorDX, TensorDW1, TensorDB1, TensorDW2, TensorDB2, TensorDRW}
}

// StageTensors returns the float stage tensors a path may report, in path order (the
// sorted-order d_rw is not among them: a path reports it through the output drw).
func StageTensors() []Tensor {
	return []Tensor{TensorXs, TensorH1, TensorAct, TensorH2, TensorO, TensorDO, TensorDH2, TensorDAct, TensorDH1, TensorDXs}
}

// Shape returns tensor t's length for this config and the length of one of its rows as
// the path lays it out (for a weight gradient: the last axis; for a stage: its columns).
// Both are 0 for TensorNone and TensorCase.
func (c Config) Shape(t Tensor) (n, cols int) {
	S := c.S()
	switch t {
	case TensorY, TensorDX:
		return c.LenX(), c.H
	case TensorDW1:
		if c.Layout == Transposed {
			return c.LenW1(), 2 * c.I
		}
		return c.LenW1(), c.H
	case TensorDW2:
		if c.Layout == Transposed {
			return c.LenW2(), c.H
		}
		return c.LenW2(), c.I
	case TensorDB1:
		return c.LenB1(), 2 * c.I
	case TensorDB2:
		return c.LenB2(), c.H
	case TensorDRW:
		return S, c.K
	case TensorXs, TensorH2, TensorO, TensorDO, TensorDH2, TensorDXs:
		return S * c.H, c.H
	case TensorH1, TensorDH1:
		return S * 2 * c.I, 2 * c.I
	case TensorAct, TensorDAct:
		return S * c.I, c.I
	case TensorDRWSorted, TensorPerm:
		return S, 1
	case TensorOffsets:
		return c.E, 1
	}
	return 0, 0
}

// Len is tensor t's length for this config (see Shape).
func (c Config) Len(t Tensor) int {
	n, _ := c.Shape(t)
	return n
}

// Stage is one stage of the path in path order (docs/path.md), as triage and reports name
// it. A weight-gradient stage covers its bias gradient.
type Stage uint8

// The stages in path order. StageCaseError (a case the backend could not finish) sorts
// before every stage.
const (
	StageNone Stage = iota
	StageCaseError
	StagePlan
	StageXs
	StageH1
	StageAct
	StageH2
	StageO
	StageY
	StageDO
	StageDRW
	StageDH2
	StageDAct
	StageWgrad2
	StageDH1
	StageDXs
	StageWgrad1
	StageDX
	numStages
)

var stageNames = [numStages]string{"", "(case error)", "routing plan", "xs", "h1", "act", "h2", "o", "y", "d_o", "d_rw",
	"d_h2", "d_act", "dW2/dB2", "d_h1", "d_xs", "dW1/dB1", "dX"}

// String is the stage's name ("routing plan", "h1", "dW2/dB2", ...).
func (s Stage) String() string {
	if s < numStages {
		return stageNames[s]
	}
	return fmt.Sprintf("stage(%d)", uint8(s))
}

// ParseStage reads a stage's name (the empty string is StageNone).
func ParseStage(name string) (Stage, bool) {
	for i, n := range stageNames {
		if n == name {
			return Stage(i), true
		}
	}
	return StageNone, false
}

// Stages returns the path's stages in path order (StageCaseError and StageNone left out).
func Stages() []Stage {
	out := make([]Stage, 0, numStages-2)
	for s := StagePlan; s < numStages; s++ {
		out = append(out, s)
	}
	return out
}

// Stage is the stage that computes t (StageNone for TensorNone, StageCaseError for
// TensorCase).
func (t Tensor) Stage() Stage {
	switch t {
	case TensorPerm, TensorOffsets:
		return StagePlan
	case TensorXs:
		return StageXs
	case TensorH1:
		return StageH1
	case TensorAct:
		return StageAct
	case TensorH2:
		return StageH2
	case TensorO:
		return StageO
	case TensorY:
		return StageY
	case TensorDO:
		return StageDO
	case TensorDRW, TensorDRWSorted:
		return StageDRW
	case TensorDH2:
		return StageDH2
	case TensorDAct:
		return StageDAct
	case TensorDW2, TensorDB2:
		return StageWgrad2
	case TensorDH1:
		return StageDH1
	case TensorDXs:
		return StageDXs
	case TensorDW1, TensorDB1:
		return StageWgrad1
	case TensorDX:
		return StageDX
	case TensorCase:
		return StageCaseError
	}
	return StageNone
}
