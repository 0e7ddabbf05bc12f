package main

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/reference"
)

// maxSharpRatios bounds the radius ratios kept per tensor for --sharpness: beyond it the
// pool keeps a uniform sample (reservoir sampling, a fixed seed), so a long run's memory stays
// bounded while its quantiles stay unbiased.
const maxSharpRatios = 1 << 21

// sharpPool pools oracle.Sharpness over the cases of a run (--sharpness): per result tensor
// the unconstrained elements (and how many have a reference out of the dtype's range), the
// wide ones, and the median / p99 of radius ÷ |reference| over every constrained element.
type sharpPool struct {
	ct    contract.Contract
	by    map[moe.Tensor]*sharpTensor
	order []moe.Tensor
	cases int
	rng   *rand.Rand
	err   error
}

type sharpTensor struct {
	oracle.TensorSharpness
	seen int // constrained elements offered to the reservoir
}

func newSharpPool(ct contract.Contract) *sharpPool {
	return &sharpPool{ct: ct, by: map[moe.Tensor]*sharpTensor{}, rng: moe.NewRand(1)}
}

// add measures case c (the enclosure under the pool's contract against the float64
// reference); the first error is kept and reported by write.
func (p *sharpPool) add(c *moe.Case) {
	if p.err != nil || c == nil {
		return
	}
	en, err := oracle.EncloseUnder(c, p.ct)
	if err != nil {
		p.err = err
		return
	}
	ref, err := reference.Run(c, reference.Options{})
	if err != nil {
		p.err = err
		return
	}
	p.cases++
	for _, s := range oracle.Sharpness(c, en, ref) {
		t := p.by[s.Tensor]
		if t == nil {
			t = &sharpTensor{TensorSharpness: oracle.TensorSharpness{Tensor: s.Tensor}}
			p.by[s.Tensor] = t
			p.order = append(p.order, s.Tensor)
		}
		t.N += s.N
		t.Unconstrained += s.Unconstrained
		t.RefOutOfRange += s.RefOutOfRange
		t.Wide += s.Wide
		for _, r := range s.Ratios {
			t.seen++
			if len(t.Ratios) < maxSharpRatios {
				t.Ratios = append(t.Ratios, r)
			} else if j := p.rng.IntN(t.seen); j < maxSharpRatios {
				t.Ratios[j] = r
			}
		}
	}
}

// write prints the pooled table.
func (p *sharpPool) write(w io.Writer) error {
	if p.err != nil {
		return fmt.Errorf("sharpness: %w", p.err)
	}
	fmt.Fprintf(w, "\nsharpness under contract %s, pooled over %d cases (radius ÷ |reference|; ÷ the tensor's RMS where the reference is 0):\n", p.ct, p.cases)
	fmt.Fprintf(w, "%-6s %11s %15s %18s %9s %9s %9s\n", "tensor", "elements", "unconstrained", "(ref out of range)", "wide", "median", "p99")
	for _, tn := range p.order {
		t := p.by[tn]
		slices.Sort(t.Ratios)
		pct := func(n int) string {
			if t.N == 0 {
				return "-"
			}
			return fmt.Sprintf("%.3f%%", 100*float64(n)/float64(t.N))
		}
		fmt.Fprintf(w, "%-6s %11d %15s %18d %9s %9s %9s\n", tn, t.N, pct(t.Unconstrained), t.RefOutOfRange, pct(t.Wide), fmtG(t.Median()), fmtG(t.P99()))
	}
	return nil
}

func fmtG(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.3g", x)
}
