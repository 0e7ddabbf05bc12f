package oracle

import (
	"fmt"
	"math"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Locate describes element i of tensor t of case c.
func Locate(c *moe.Case, p *moe.Plan, tensor moe.Tensor, i int) Location {
	ck := &checker{c: c, p: p}
	return ck.locate(tensor, i)
}

// Outputs returns the output tensors case c has, in a stable order (biases only when the
// case has them); read each from a result with gpu.Result.Tensor.
func Outputs(c *moe.Case) []moe.Tensor {
	out := make([]moe.Tensor, 0, 7)
	for _, t := range []moe.Tensor{moe.TensorY, moe.TensorDX, moe.TensorDW1, moe.TensorDW2, moe.TensorDRW, moe.TensorDB1, moe.TensorDB2} {
		if !t.Bias() || c.Bias {
			out = append(out, t)
		}
	}
	return out
}

// CompareBitwise reports every tensor in which two results of the same case differ in any
// bit — the sign of zero included — except that all NaNs are equal: IEEE 754 does not say
// which payload or sign an operation on NaN operands returns (x86 keeps the first operand's,
// GPUs return a canonical NaN), so a correct path may give different NaNs for the same
// inputs. Surviving poison signatures are the oracle's separate check. what names the
// comparison in the failure's detail (e.g. "poison nan vs zeros").
func CompareBitwise(c *moe.Case, a, b *gpu.Result, what string) []Failure {
	p, err := c.Plan()
	if err != nil {
		return []Failure{{Check: CheckBitwise, Tensor: moe.TensorCase, Count: 1, Detail: err.Error()}}
	}
	var out []Failure
	for _, t := range Outputs(c) {
		x, y := a.Tensor(t), b.Tensor(t)
		if len(x) != len(y) {
			out = append(out, Failure{Check: CheckBitwise, Tensor: t, Count: 1, Detail: fmt.Sprintf("%s: lengths %d and %d", what, len(x), len(y))})
			continue
		}
		var agg agg
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) && !(x[i] != x[i] && y[i] != y[i]) {
				g, w := float64(y[i]), float64(x[i])
				agg.add(Failure{Check: CheckBitwise, Tensor: t, Worst: Locate(c, p, t, i), Got: g, Want: w, Ratio: ratio(g, w, 0)})
			}
		}
		if agg.set {
			agg.f.Detail = what
			out = append(out, agg.f)
		}
	}
	return out
}

// Bounds returns the enclosure (center, radius) of an output or stage tensor; a NaN radius
// marks an unconstrained element. ok is false for a tensor the enclosure does not hold.
func (e *Enclosure) Bounds(t moe.Tensor) (c, r []float64, ok bool) {
	v, ok := e.tensor2(t)
	return v.c, v.r, ok
}

// tensor is the enclosure of t (empty for a tensor it does not hold).
func (e *Enclosure) tensor(t moe.Tensor) ivec {
	v, _ := e.tensor2(t)
	return v
}

func (e *Enclosure) tensor2(t moe.Tensor) (ivec, bool) {
	switch t {
	case moe.TensorY:
		return e.Y, true
	case moe.TensorDX:
		return e.DX, true
	case moe.TensorDW1:
		return e.DW1, true
	case moe.TensorDB1:
		return e.DB1, true
	case moe.TensorDW2:
		return e.DW2, true
	case moe.TensorDB2:
		return e.DB2, true
	case moe.TensorDRW:
		return e.DRW, true
	case moe.TensorXs:
		return e.Xs, true
	case moe.TensorH1:
		return e.H1, true
	case moe.TensorAct:
		return e.Act, true
	case moe.TensorH2:
		return e.H2, true
	case moe.TensorO:
		return e.O, true
	case moe.TensorDO:
		return e.DO, true
	case moe.TensorDRWSorted:
		return e.DRWSorted, true
	case moe.TensorDH2:
		return e.DH2, true
	case moe.TensorDAct:
		return e.DAct, true
	case moe.TensorDH1:
		return e.DH1, true
	case moe.TensorDXs:
		return e.DXs, true
	}
	return ivec{}, false
}
