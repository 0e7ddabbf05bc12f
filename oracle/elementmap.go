package oracle

import (
	"fmt"
	"math"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// ElementMap is the per-element picture of one stage tensor in sorted-row order, for plots
// and triage: Ratio[i] = |got − center|/radius against the end-to-end enclosure (0 for an
// exact match, +Inf for a value outside a zero-width enclosure or a non-finite value, NaN
// where the element is unconstrained).
type ElementMap struct {
	Tensor     string
	Rows, Cols int
	Ratio      []float64
	NonFinite  []bool
	Signature  []gpu.Buffer // surviving signature per element (0: none)
	Offsets    []int32      // the routing's inclusive per-expert offsets: expert e owns rows [Offsets[e−1], Offsets[e])
	RealRows   int          // rows ≥ RealRows are the sentinel tail
}

// stageTensorList lists the stage tensors ElementMaps supports, in path order.
var stageTensorList = []string{"xs", "h1", "act", "h2", "o", "d_o", "d_h2", "d_act", "d_h1", "d_xs"}

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
	tensors := []struct {
		name string
		data []float32
		enc  ivec
		cols int
	}{
		{"xs", st.Xs, en.Xs, c.H}, {"h1", st.H1, en.H1, 2 * c.I}, {"act", st.Act, en.Act, c.I}, {"h2", st.H2, en.H2, c.H},
		{"o", st.O, en.O, c.H}, {"d_o", st.DO, en.DO, c.H}, {"d_h2", st.DH2, en.DH2, c.H}, {"d_act", st.DAct, en.DAct, c.I},
		{"d_h1", st.DH1, en.DH1, 2 * c.I}, {"d_xs", st.DXs, en.DXs, c.H},
	}
	var out []*ElementMap
	for _, t := range tensors {
		if len(t.data) != S*t.cols {
			continue
		}
		m := &ElementMap{Tensor: t.name, Rows: S, Cols: t.cols, Ratio: make([]float64, len(t.data)),
			NonFinite: make([]bool, len(t.data)), Signature: make([]gpu.Buffer, len(t.data)),
			Offsets: append([]int32(nil), en.Plan.Offsets...), RealRows: en.Plan.Rows}
		for i, g32 := range t.data {
			g := float64(g32)
			m.NonFinite[i] = math.IsNaN(g) || math.IsInf(g, 0)
			if b, ok := gpu.SignatureOf(g32); ok {
				m.Signature[i] = b
			}
			if !t.enc.known(i) {
				m.Ratio[i] = math.NaN()
				continue
			}
			m.Ratio[i] = ratio(g, t.enc.c[i], t.enc.r[i])
		}
		out = append(out, m)
	}
	return out, nil
}

// StageTensors returns the stage tensors ElementMaps supports, in path order (a fresh copy: the table itself cannot be changed from outside).
func StageTensors() []string { return append([]string(nil), stageTensorList...) }
