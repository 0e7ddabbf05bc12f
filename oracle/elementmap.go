package oracle

import (
	"fmt"
	"github.com/moecheck/moecheck/internal/poison"
	"math"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// ElementMap is the per-element picture of one stage tensor in sorted-row order, for plots
// and triage: Ratio[i] = |got − center|/radius against the end-to-end enclosure (0 for an
// exact match, +Inf for a value outside a zero-width enclosure or a non-finite value, NaN
// where the element is unconstrained).
type ElementMap struct {
	Tensor     moe.Tensor
	Rows, Cols int
	Ratio      []float64
	NonFinite  []bool
	Signature  []gpu.Buffer // surviving signature per element (0: none)
	Offsets    []int32      // the routing's inclusive per-expert offsets: expert e owns rows [Offsets[e−1], Offsets[e])
	RealRows   int          // rows ≥ RealRows are the sentinel tail
}

// ElementMaps computes the map of every stage tensor the result carries (it needs
// Result.Stages); en may be nil (computed here).
func ElementMaps(c *moe.Case, got *gpu.Result, en *Enclosure) ([]*ElementMap, error) {
	if got == nil || got.Stages == nil {
		return nil, fmt.Errorf("oracle: element maps need a result with stages")
	}
	if en == nil {
		var err error
		if en, err = Enclose(c); err != nil {
			return nil, err
		}
	}
	st := got.Stages
	S := c.S()
	var out []*ElementMap
	for _, tn := range moe.StageTensors() {
		data, enc := st.Tensor(tn), en.tensor(tn)
		n, cols := c.Shape(tn)
		if len(data) != n {
			continue
		}
		m := &ElementMap{Tensor: tn, Rows: S, Cols: cols, Ratio: make([]float64, len(data)),
			NonFinite: make([]bool, len(data)), Signature: make([]gpu.Buffer, len(data)),
			Offsets: append([]int32(nil), en.Plan.Offsets...), RealRows: en.Plan.Rows}
		for i, g32 := range data {
			g := float64(g32)
			m.NonFinite[i] = math.IsNaN(g) || math.IsInf(g, 0)
			if b, ok := poison.Of(g32); ok {
				m.Signature[i] = b
			}
			if !enc.known(i) {
				m.Ratio[i] = math.NaN()
				continue
			}
			m.Ratio[i] = ratio(g, enc.c[i], enc.r[i])
		}
		out = append(out, m)
	}
	return out, nil
}
