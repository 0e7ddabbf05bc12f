package oracle

import (
	"math"
	"slices"

	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// TensorSharpness says how sharp an enclosure is on one result tensor: how many elements it
// leaves unconstrained, and how wide it is relative to the true (float64 reference) value.
// A blind spot shows up as unconstrained elements whose reference is in range, or as a large
// p99 ratio: a fault that moves a value by less than its radius passes.
type TensorSharpness struct {
	Tensor moe.Tensor
	N      int
	// Unconstrained counts elements with no enclosure (NaN or infinite radius).
	Unconstrained int
	// RefOutOfRange counts the unconstrained elements whose float64 reference is itself out
	// of the dtype's range (non-finite, or beyond its largest finite value): the only
	// legitimate reason for an element to be unconstrained. Unconstrained − RefOutOfRange
	// is the blind spot.
	RefOutOfRange int
	// Wide counts constrained elements whose radius exceeds a tenth of the tensor's reference
	// RMS (its typical magnitude): a fault moving such an element by 10% of a typical value
	// can pass.
	Wide int
	// Ratios holds, for every constrained element, radius ÷ |reference| (÷ the tensor's
	// reference RMS where the reference is 0; 0 where both are 0 and the radius is 0; +Inf
	// where the radius is positive and the RMS is 0). Sorted ascending. Aggregations over
	// many cases pool these.
	Ratios []float64
}

// Median is the median radius ratio (NaN when no element is constrained).
func (s TensorSharpness) Median() float64 { return Quantile(s.Ratios, 0.5) }

// P99 is the 99th percentile radius ratio (NaN when no element is constrained).
func (s TensorSharpness) P99() float64 { return Quantile(s.Ratios, 0.99) }

// Blind is the number of unconstrained elements whose reference is in range.
func (s TensorSharpness) Blind() int { return s.Unconstrained - s.RefOutOfRange }

// Quantile returns the q-quantile (nearest rank) of ascending sorted values, NaN if empty.
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Sharpness measures the end-to-end enclosure en of case c against the float64 reference ref
// (reference.Run(c)), per result tensor, in the order of Tensors (biases only with biases).
func Sharpness(c *moe.Case, en *Enclosure, ref *reference.Result) []TensorSharpness {
	refs := []struct {
		name moe.Tensor
		ref  []float64
		ok   bool
	}{{moe.TensorY, ref.Y, true}, {moe.TensorDX, ref.DX, true}, {moe.TensorDW1, ref.DW1, true}, {moe.TensorDW2, ref.DW2, true}, {moe.TensorDRW, ref.DRW, true},
		{moe.TensorDB1, ref.DB1, c.Bias}, {moe.TensorDB2, ref.DB2, c.Bias}}
	max := c.DType.MaxFinite()
	var out []TensorSharpness
	for _, t := range refs {
		if !t.ok {
			continue
		}
		cs, rs, ok := en.Bounds(t.name)
		if !ok || len(cs) != len(t.ref) {
			continue
		}
		s := TensorSharpness{Tensor: t.name, N: len(cs)}
		var sq float64
		var n int
		for _, x := range t.ref {
			if !math.IsNaN(x) && !math.IsInf(x, 0) {
				sq += x * x
				n++
			}
		}
		rms := 0.0
		if n > 0 {
			rms = math.Sqrt(sq / float64(n))
		}
		for i, r := range rs {
			x := t.ref[i]
			if math.IsNaN(r) || math.IsInf(r, 0) || math.IsNaN(cs[i]) {
				s.Unconstrained++
				if math.IsNaN(x) || math.Abs(x) > max {
					s.RefOutOfRange++
				}
				continue
			}
			if r > 0.1*rms {
				s.Wide++
			}
			den := math.Abs(x)
			if den == 0 || math.IsNaN(den) || math.IsInf(den, 0) {
				den = rms
			}
			switch {
			case r == 0:
				s.Ratios = append(s.Ratios, 0)
			case den == 0:
				s.Ratios = append(s.Ratios, math.Inf(1))
			default:
				s.Ratios = append(s.Ratios, r/den)
			}
		}
		slices.Sort(s.Ratios)
		out = append(out, s)
	}
	return out
}

// Merge pools b into a (same tensor): counts add, ratios are merged and kept sorted.
func (a *TensorSharpness) Merge(b TensorSharpness) {
	a.N += b.N
	a.Unconstrained += b.Unconstrained
	a.RefOutOfRange += b.RefOutOfRange
	a.Wide += b.Wide
	a.Ratios = append(a.Ratios, b.Ratios...)
	slices.Sort(a.Ratios)
}
