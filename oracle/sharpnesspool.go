package oracle

import (
	"math/rand/v2"
	"slices"

	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// MaxPooledRatios bounds the radius ratios a SharpnessPool keeps per tensor: beyond it the
// pool keeps a uniform sample (reservoir sampling with a fixed seed), so a long run's memory
// stays bounded while its quantiles stay unbiased.
const MaxPooledRatios = 1 << 21

// SharpnessPool pools Sharpness over many cases (a check or nightly run): per result tensor
// the counts add and the radius ratios are pooled (sampled beyond MaxPooledRatios). The zero
// value is ready to use; a pool must not be used by two goroutines at once.
type SharpnessPool struct {
	Cases int
	by    map[moe.Tensor]*pooled
	order []moe.Tensor
	rng   *rand.Rand
}

type pooled struct {
	TensorSharpness
	seen   int  // constrained elements offered to the reservoir
	sorted bool // Ratios sorted since the last Add
}

// Add measures case c: its end-to-end enclosure en (EncloseUnder under the run's contract)
// against the float64 reference ref (reference.Run).
func (p *SharpnessPool) Add(c *moe.Case, en *Enclosure, ref *reference.Result) {
	if p.by == nil {
		p.by = map[moe.Tensor]*pooled{}
		p.rng = rand.New(rand.NewPCG(1, 2))
	}
	p.Cases++
	for _, s := range Sharpness(c, en, ref) {
		t := p.by[s.Tensor]
		if t == nil {
			t = &pooled{TensorSharpness: TensorSharpness{Tensor: s.Tensor}}
			p.by[s.Tensor] = t
			p.order = append(p.order, s.Tensor)
		}
		t.N += s.N
		t.Unconstrained += s.Unconstrained
		t.RefOutOfRange += s.RefOutOfRange
		t.Wide += s.Wide
		t.sorted = false
		for _, r := range s.Ratios {
			t.seen++
			if len(t.Ratios) < MaxPooledRatios {
				t.Ratios = append(t.Ratios, r)
			} else if j := p.rng.IntN(t.seen); j < MaxPooledRatios {
				t.Ratios[j] = r
			}
		}
	}
}

// Tensors returns the pooled measures, one per result tensor in first-seen order, their
// Ratios sorted (Median and P99 read them).
func (p *SharpnessPool) Tensors() []TensorSharpness {
	out := make([]TensorSharpness, 0, len(p.order))
	for _, tn := range p.order {
		t := p.by[tn]
		if !t.sorted {
			slices.Sort(t.Ratios)
			t.sorted = true
		}
		out = append(out, t.TensorSharpness)
	}
	return out
}
