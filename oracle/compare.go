package oracle

import (
	"fmt"
	"math"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Locate describes element i of a named tensor of case c ("y", "dX", "dW1", "dB1", "dW2",
// "dB2", "drw", or a stage name such as "h1" or "d_act").
func Locate(c *moe.Case, p *moe.Plan, tensor string, i int) Location {
	ck := &checker{c: c, p: p}
	return ck.locate(tensor, i)
}

// Tensors returns the result tensors of r by name, in a stable order (biases only when the
// case has them).
func Tensors(c *moe.Case, r *gpu.Result) []NamedTensor {
	out := []NamedTensor{{"y", r.Y}, {"dX", r.DX}, {"dW1", r.DW1}, {"dW2", r.DW2}, {"drw", r.DRW}}
	if c.Bias {
		out = append(out, NamedTensor{"dB1", r.DB1}, NamedTensor{"dB2", r.DB2})
	}
	return out
}

// NamedTensor is one result tensor.
type NamedTensor struct {
	Name string
	Data []float32
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
		return []Failure{{Check: CheckBitwise, Tensor: "case", Count: 1, Detail: err.Error()}}
	}
	ta, tb := Tensors(c, a), Tensors(c, b)
	var out []Failure
	for k := range ta {
		x, y := ta[k].Data, tb[k].Data
		if len(x) != len(y) {
			out = append(out, Failure{Check: CheckBitwise, Tensor: ta[k].Name, Count: 1, Detail: fmt.Sprintf("%s: lengths %d and %d", what, len(x), len(y))})
			continue
		}
		var agg agg
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) && !(x[i] != x[i] && y[i] != y[i]) {
				g, w := float64(y[i]), float64(x[i])
				agg.add(Failure{Check: CheckBitwise, Tensor: ta[k].Name, Worst: Locate(c, p, ta[k].Name, i), Got: g, Want: w, Ratio: ratio(g, w, 0)})
			}
		}
		if agg.set {
			agg.f.Detail = what
			out = append(out, agg.f)
		}
	}
	return out
}

// Bounds returns the enclosure (center, radius) of a result tensor by name; a NaN radius
// marks an unconstrained element.
func (e *Enclosure) Bounds(tensor string) (c, r []float64, ok bool) {
	m := map[string]ivec{"y": e.Y, "dX": e.DX, "dW1": e.DW1, "dB1": e.DB1, "dW2": e.DW2, "dB2": e.DB2, "drw": e.DRW}
	v, ok := m[tensor]
	return v.c, v.r, ok
}
