package main

import (
	"fmt"
	"io"
	"math"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/reference"
)

// sharpPool pools oracle.Sharpness over the cases of a run (--sharpness) under the judging
// contract: per result tensor the unconstrained elements (and how many have a reference out
// of the dtype's range), the wide ones, and the median / p99 of radius ÷ |reference|.
type sharpPool struct {
	ct   contract.Contract
	pool oracle.SharpnessPool
	err  error
}

func newSharpPool(ct contract.Contract) *sharpPool { return &sharpPool{ct: ct} }

// add measures case c; the first error is kept and reported by write.
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
	p.pool.Add(c, en, ref)
}

// write prints the pooled table.
func (p *sharpPool) write(w io.Writer) error {
	if p.err != nil {
		return fmt.Errorf("sharpness: %w", p.err)
	}
	fmt.Fprintf(w, "\nsharpness under contract %s, pooled over %d cases (radius ÷ |reference|; ÷ the tensor's RMS where the reference is 0):\n", p.ct, p.pool.Cases)
	fmt.Fprintf(w, "%-6s %11s %15s %18s %9s %9s %9s\n", "tensor", "elements", "unconstrained", "(ref out of range)", "wide", "median", "p99")
	for _, t := range p.pool.Tensors() {
		pct := func(n int) string {
			if t.N == 0 {
				return "-"
			}
			return fmt.Sprintf("%.3f%%", 100*float64(n)/float64(t.N))
		}
		fmt.Fprintf(w, "%-6s %11d %15s %18d %9s %9s %9s\n", t.Tensor, t.N, pct(t.Unconstrained), t.RefOutOfRange, pct(t.Wide), fmtG(t.Median()), fmtG(t.P99()))
	}
	return nil
}

func fmtG(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.3g", x)
}
