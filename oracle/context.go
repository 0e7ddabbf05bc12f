package oracle

import (
	"math"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// addContext fills RelFro and CalcDiff of the output tensors' stats against the float64
// reference (for context in reports; the verdict never depends on them).
func addContext(v *Verdict, c *moe.Case, got *gpu.Result, ref *reference.Result) {
	for _, t := range Outputs(c) {
		g, r := got.Tensor(t), ref.Tensor(t)
		if len(r) != len(g) {
			continue
		}
		for i := range v.Stats {
			if v.Stats[i].Tensor == t && !v.Stats[i].Local {
				v.Stats[i].RelFro, v.Stats[i].CalcDiff = RelFro(g, r), CalcDiff(g, r)
			}
		}
	}
}

// RelFro is ‖got − ref‖_F / ‖ref‖_F (NaN when got has a non-finite value; 0/0 is 0).
func RelFro(got []float32, ref []float64) float64 {
	var num, den float64
	for i, g := range got {
		d := float64(g) - ref[i]
		num += d * d
		den += ref[i] * ref[i]
	}
	if den == 0 {
		if num == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return math.Sqrt(num / den)
}

// CalcDiff is DeepGEMM's global similarity 1 − 2Σxy/Σ(x²+y²): 0 for identical tensors. It
// is blind to a single zeroed row among many, which is why moecheck never decides with it.
func CalcDiff(got []float32, ref []float64) float64 {
	var xy, sq float64
	for i, g := range got {
		x := float64(g)
		xy += x * ref[i]
		sq += x*x + ref[i]*ref[i]
	}
	if sq == 0 {
		return 0
	}
	return 1 - 2*xy/sq
}
