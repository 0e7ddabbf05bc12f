package oracle

import (
	"fmt"

	"github.com/moecheck/moecheck/gpu"
)

// stages runs the stage-local checks: each stage the path reports is compared with the
// enclosure of that stage computed from the path's *own* reported inputs to it (exactly known
// dtype values), so the only uncertainty is the stage's own rounding. This makes precision
// faults visible (a GEMM accumulated in bf16, a combine in the dtype) that an end-to-end
// enclosure cannot separate from legitimate rounding at realistic sizes, and names the first
// stage that went wrong. See docs/oracle.md §4.
func (ck *checker) stages(res *gpu.Result) {
	st := res.Stages
	c, p := ck.c, ck.p
	S := c.S()
	// The routing stage: the path's sort and offsets must be the routing's.
	if len(st.Offsets) != c.E {
		ck.fail(Failure{Check: CheckPlan, Tensor: "offsets", Count: 1, Detail: fmt.Sprintf("path reported %d offsets, want E = %d", len(st.Offsets), c.E)})
		return
	}
	for e, o := range st.Offsets {
		if o != p.Offsets[e] {
			ck.fail(Failure{Check: CheckPlan, Tensor: "offsets", Count: 1, Worst: Location{Tensor: "offsets", Index: e, Expert: e, Token: -1, Slot: -1, SortedRow: -1, Row: -1, Col: -1},
				Got: float64(o), Want: float64(p.Offsets[e]), Ratio: 1e300,
				Detail: fmt.Sprintf("offsets[%d] = %d, want %d (inclusive cumulative counts over experts 0..E−1)", e, o, p.Offsets[e])})
			return
		}
	}
	if len(st.Perm) != S {
		ck.fail(Failure{Check: CheckPlan, Tensor: "perm", Count: 1, Detail: fmt.Sprintf("path reported %d sorted rows, want S = %d", len(st.Perm), S)})
		return
	}
	for i, s := range st.Perm {
		if s != p.Perm[i] {
			ck.fail(Failure{Check: CheckPlan, Tensor: "perm", Count: 1, Worst: ck.locate("d_rw", i),
				Got: float64(s), Want: float64(p.Perm[i]), Ratio: 1e300,
				Detail: fmt.Sprintf("sorted row %d holds slot %d, want %d (stable sort by expert id, sentinels last)", i, s, p.Perm[i])})
			return
		}
	}
	n := map[string]int{"xs": S * c.H, "h1": S * 2 * c.I, "act": S * c.I, "h2": S * c.H, "o": S * c.H,
		"d_o": S * c.H, "d_h2": S * c.H, "d_act": S * c.I, "d_h1": S * 2 * c.I, "d_xs": S * c.H}
	tensors := map[string][]float32{"xs": st.Xs, "h1": st.H1, "act": st.Act, "h2": st.H2, "o": st.O,
		"d_o": st.DO, "d_h2": st.DH2, "d_act": st.DAct, "d_h1": st.DH1, "d_xs": st.DXs}
	for name, t := range tensors {
		if len(t) != n[name] {
			ck.fail(Failure{Check: CheckShape, Tensor: name, Count: 1, Detail: fmt.Sprintf("stage %s has length %d, want %d", name, len(t), n[name])})
			return
		}
	}
	en := newEnclIn(c, p, ck.ar, ck.ws)
	en.ct = ck.ct
	pt := en.point
	ck.compare("xs", st.Xs, en.gather(c.X, true), false)
	ck.compare("h1", st.H1, en.gemm1(pt(st.Xs)), false)
	ck.compare("act", st.Act, en.activation(pt(st.H1)), false)
	ck.compare("h2", st.H2, en.gemm2(pt(st.Act)), false)
	ck.compare("o", st.O, en.weight(pt(st.H2)), false)
	ck.compare("d_o", st.DO, en.gather(c.DY, false), false)
	ck.compare("d_h2", st.DH2, en.dh2(pt(st.DO)), false)
	ck.compare("d_act", st.DAct, en.dgrad2(pt(st.DH2)), false)
	ck.compare("d_h1", st.DH1, en.actBackward(pt(st.H1), pt(st.DAct)), false)
	ck.compare("d_xs", st.DXs, en.dgrad1(pt(st.DH1)), false)
	// The outputs again, now from the path's own last stages (names suffixed "@local").
	var dw1, db1, dw2, db2 ivec
	wg2 := func() { dw2, db2 = en.wgrad2(pt(st.DH2), pt(st.Act)) }
	wg1 := func() { dw1, db1 = en.wgrad1(pt(st.DH1), pt(st.Xs)) }
	locals := []struct {
		name string
		got  []float32
		enc  func() ivec
		ok   bool
	}{
		{"y", res.Y, func() ivec { return en.combine(pt(st.O)) }, true},
		{"dX", res.DX, func() ivec { return en.scatter(pt(st.DXs)) }, true},
		{"drw", res.DRW, func() ivec { return en.unsort(en.drw(pt(st.DO), pt(st.H2))) }, true},
		{"dW2", res.DW2, func() ivec { wg2(); return dw2 }, true},
		{"dW1", res.DW1, func() ivec { wg1(); return dw1 }, true},
		{"dB2", res.DB2, func() ivec { return db2 }, c.Bias},
		{"dB1", res.DB1, func() ivec { return db1 }, c.Bias},
	}
	for _, l := range locals {
		if !l.ok {
			continue
		}
		enc := l.enc()
		if len(l.got) != len(enc.c) {
			continue // shape failures are reported with the outputs
		}
		ck.compareAs(l.name+"@local", l.name, l.got, enc)
	}
}
