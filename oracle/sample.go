package oracle

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/moecheck/moecheck/moe"
)

// The sampled check (issue 14 item 4): layers too large to check whole (DeepSeek-V3: H 7168,
// I 2048, 32 local experts of an EP-8 rank) judge a seeded random subset of the units of each
// stage-local check, with every judged element's enclosure derived exactly as the full check
// derives it (the same functions on the same operands; only coverage changes). The units:
//
//   - the sorted rows of every stage (h1, act, …, d_xs), stratified per expert group: each
//     non-empty expert's rows are one stratum. Each group's first two and last two rows are
//     always judged (group boundaries: where offset and off-by-one bugs land), and so is
//     every row holding a non-finite value (an O(n) scan). The sentinel tail (rows ≥ R) is
//     judged whole: the tail shortcut (stream.go) makes it cheap, and a tail that is not what
//     the contract says is derived without a GEMM;
//   - the tokens of y and dX (stage-local), one stratum; the first and last token and the
//     tokens fed by each group's first and last rows are always judged, and so is every
//     token holding a non-finite value;
//   - the output rows of dW1 (2I rows of H) and dW2 (H rows of I) of every expert with rows,
//     per expert; rows 0, 1, I−1, I, nOut−2, nOut−1 (the gate/up halves' edges) and rows
//     holding a non-finite value are always judged.
//
// Judged whole, because they cost O(n) and not a GEMM: the plan (offsets, permutation), the
// exact contracts (sentinel rows, sentinel d_rw, empty experts' gradients), the poison
// signature scan of every output, d_rw, the bias gradients, the empty experts' dW (exact
// zeros) and the sentinel tail of every stage.
//
// Within stratum g, after the forced units, s_g = ⌈f·N_g⌉ of the remaining N_g units are drawn
// uniformly without replacement (a generator seeded by the seed, the tensor and the stratum),
// so s_g/N_g ≥ f. A fault that makes the full check flag m units of a tensor outside the
// forced ones, m_g of them in stratum g, escapes the sample with probability
//
//	P = Π_g C(N_g − m_g, s_g)/C(N_g, s_g) ≤ Π_g (1 − s_g/N_g)^{m_g} ≤ (1 − f_min)^m,
//
// f_min the smallest s_g/N_g (docs/oracle.md §10 derives it). SampleStat reports f_min and
// the smallest m whose bound is at most SampleDelta.

// Sample selects the sampled check. The zero value checks everything (the full check).
type Sample struct {
	// Fraction is the fraction f of each stratum's units drawn at random, in (0, 1]; 0 and 1
	// both check everything (1 gives the full check's verdict exactly).
	Fraction float64
	// Seed seeds the draw: the same seed, case and result judge the same units.
	Seed uint64
}

// On reports whether s samples (0 < Fraction < 1).
func (s Sample) On() bool { return s.Fraction > 0 && s.Fraction < 1 }

// Validate reports a fraction that is not a number in [0, 1].
func (s Sample) Validate() error {
	if !(s.Fraction >= 0 && s.Fraction <= 1) {
		return fmt.Errorf("oracle: sample fraction %v: want a number in [0, 1] (0 or 1: check everything)", s.Fraction)
	}
	return nil
}

// SampleDelta is the miss probability SampleStat.MissM is stated for.
const SampleDelta = 1e-3

// SampleReport says what a sampled check judged. Verdict.Sample is nil for a full check.
type SampleReport struct {
	Fraction float64
	Seed     uint64
	// Tensors lists the sampled tensors in the order they were judged; a tensor not listed
	// was judged whole.
	Tensors []SampleStat
}

// SampleStat is the coverage of one sampled tensor.
type SampleStat struct {
	Tensor moe.Tensor
	Local  bool   // a stage-local output (y@local, dX@local)
	Unit   string // "row" (sorted rows of a stage), "token", "dw-row" (an output row of one expert's weight gradient)
	// Units counts the tensor's sampled units (the sentinel tail and empty experts, judged
	// whole, are not among them); Judged how many of them were judged, Forced of which were
	// always judged (boundaries, non-finite values).
	Units, Judged, Forced int
	// Elements and JudgedElements count the tensor's elements and those judged (the whole
	// parts included).
	Elements, JudgedElements int
	// MinFrac is f_min: the smallest fraction s_g/N_g drawn in a stratum with units left
	// after the forced ones (1 when every unit was judged).
	MinFrac float64
	// MissM is the smallest m with (1 − MinFrac)^m ≤ SampleDelta: a fault that corrupts m ≥
	// MissM units (rows whose element the full check flags), outside the forced ones, is
	// missed with probability at most SampleDelta. 0 when every unit was judged.
	MissM int
}

// Name is the tensor as reports print it.
func (s SampleStat) Name() string { return Failure{Tensor: s.Tensor, Local: s.Local}.TensorName() }

// MissBound is the bound (1 − MinFrac)^m on the probability that a fault corrupting m units
// outside the forced ones escapes the sample.
func (s SampleStat) MissBound(m int) float64 {
	if m <= 0 {
		return 1
	}
	return math.Pow(1-s.MinFrac, float64(m))
}

// missM is the smallest m with (1 − f)^m ≤ delta (0 for f ≥ 1; a large sentinel for f ≤ 0).
func missM(f, delta float64) int {
	switch {
	case f >= 1:
		return 0
	case f <= 0:
		return math.MaxInt32
	}
	m := int(math.Ceil(math.Log(delta) / math.Log1p(-f)))
	// the float64 evaluation may land one off at an exact power: settle it on the bound
	for m > 1 && math.Pow(1-f, float64(m-1)) <= delta {
		m--
	}
	for math.Pow(1-f, float64(m)) > delta {
		m++
	}
	return m
}

// MissProbability is the probability that a uniform draw of s of n units without replacement
// misses all m marked units: C(n − m, s)/C(n, s) = Π_{i<s} (n − m − i)/(n − i) (0 when
// m > n − s; 1 when m or s is 0).
func MissProbability(n, s, m int) float64 {
	if m <= 0 || s <= 0 {
		return 1
	}
	if m > n-s {
		return 0
	}
	p := 1.0
	for i := 0; i < s; i++ {
		p *= float64(n-m-i) / float64(n-i)
	}
	return p
}

// sampler draws the judged units of a sampled check.
type sampler struct {
	s Sample
	r SampleReport
}

// stratum draws the judged units of one stratum [lo, hi) of tensor t (stratum number g):
// the forced units (forced(u) true, or listed in always) and ⌈f·N⌉ of the others, appended
// in increasing order to out; it adds the stratum to st.
func (sm *sampler) stratum(out []int32, t moe.Tensor, local bool, g, lo, hi int, always []int, forced func(u int) bool, st *SampleStat) []int32 {
	n := hi - lo
	if n <= 0 {
		return out
	}
	start := len(out)
	var rest []int32
	for u := lo; u < hi; u++ {
		if forced(u) || slices.Contains(always, u) {
			out = append(out, int32(u))
		} else {
			rest = append(rest, int32(u))
		}
	}
	nf := len(out) - start
	st.Units += n
	st.Forced += nf
	if len(rest) > 0 {
		s := int(math.Ceil(sm.s.Fraction * float64(len(rest))))
		s = min(max(s, 1), len(rest))
		key := uint64(t)<<1 | b2u(local)
		rng := rand.New(rand.NewPCG(sm.s.Seed, key<<40^uint64(g)*0x9E3779B97F4A7C15))
		// a partial Fisher–Yates shuffle: rest[:s] is a uniform draw without replacement
		for i := 0; i < s; i++ {
			j := i + rng.IntN(len(rest)-i)
			rest[i], rest[j] = rest[j], rest[i]
		}
		out = append(out, rest[:s]...)
		if f := float64(s) / float64(len(rest)); f < st.MinFrac {
			st.MinFrac = f
		}
	}
	st.Judged += len(out) - start
	slices.Sort(out[start:])
	return out
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// newStat starts the coverage record of a sampled tensor.
func (sm *sampler) newStat(t moe.Tensor, local bool, unit string, elements int) *SampleStat {
	sm.r.Tensors = append(sm.r.Tensors, SampleStat{Tensor: t, Local: local, Unit: unit, Elements: elements, MinFrac: 1})
	return &sm.r.Tensors[len(sm.r.Tensors)-1]
}

// done finishes a tensor's record: MissM from MinFrac; judged elements as counted.
func (st *SampleStat) done(judgedElements int) {
	st.JudgedElements = judgedElements
	st.MissM = missM(st.MinFrac, SampleDelta)
}

// nonFiniteOutRows reports per output row i of one expert's weight gradient v (nOut×nIn,
// row-major when rowMajor, else column-major: the transposed layout) whether it holds a NaN
// or ±Inf, in one pass over v.
func nonFiniteOutRows(v []float32, nOut, nIn int, rowMajor bool) []bool {
	bad := make([]bool, nOut)
	for q, x := range v {
		if math.Float32bits(x)&0x7f800000 == 0x7f800000 {
			if rowMajor {
				bad[q/nIn] = true
			} else {
				bad[q%nOut] = true
			}
		}
	}
	return bad
}

// groupEdges is the rows always judged in a group [b, e): its first two and last two.
func groupEdges(b, e int) []int { return []int{b, b + 1, e - 2, e - 1} }

// rowSpans is the spans of a sampled stage of row length n: per expert with rows, the rows
// judged (span.rows), then the sentinel tail whole in blocks (as the full check).
func (ck *checker) rowSpans(en *encl, t moe.Tensor, got []float32, n int) []span {
	st := ck.sm.newStat(t, false, "row", len(got))
	var out []span
	judged := 0
	for e := 0; e < en.E; e++ {
		b, end := en.rowsOf(e)
		if end <= b {
			continue
		}
		rows := ck.sm.stratum(nil, t, false, e, b, end, groupEdges(b, end), func(u int) bool { return !allFinite32(got[u*n : (u+1)*n]) }, st)
		out = append(out, span{b, end, e, rows})
		judged += len(rows) * n
	}
	out = blocks(out, en.R, en.S, n)
	judged += (en.S - en.R) * n
	st.done(judged)
	return out
}

// tokenSpan is the span of a sampled local output (y, dX): the tokens judged.
func (ck *checker) tokenSpan(en *encl, t moe.Tensor, got []float32) []span {
	H := en.H
	st := ck.sm.newStat(t, true, "token", len(got))
	always := []int{0, en.T - 1}
	for e := 0; e < en.E; e++ {
		b, end := en.rowsOf(e)
		for _, r := range groupEdges(b, end) {
			if r >= b && r < end {
				always = append(always, en.tok[r])
			}
		}
	}
	rows := ck.sm.stratum(nil, t, true, 0, 0, en.T, always, func(u int) bool { return !allFinite32(got[u*H : (u+1)*H]) }, st)
	st.done(len(rows) * H)
	return []span{{0, en.T, -1, rows}}
}

// subIvec is elements [lo, lo+n) of v.
func subIvec(v ivec, lo, n int) ivec { return ivec{c: v.c[lo : lo+n], r: v.r[lo : lo+n]} }

// rowList returns the listed rows (row length n) of s as a mat in x's scratch.
func (s rowsrc) rowList(x *encl, rows []int32, n int) mat {
	m := x.newMatDirty(len(rows), n)
	for k, r := range rows {
		s.rowsInto(mat{1, n, m.c[k*n : (k+1)*n], m.r[k*n : (k+1)*n]}, int(r), int(r)+1, n)
	}
	return m
}

// colsMatSel is colsMat keeping only the listed columns sel of v: a len(sel)×(e−b) mat.
func (en *encl) colsMatSel(v rowsrc, b, e, n int, sel []int32) mat {
	m := en.newMatDirty(len(sel), e-b)
	for i := b; i < e; i++ {
		for k, j := range sel {
			x := v.at(i*n + int(j))
			m.c[k*(e-b)+i-b] = x.v
			m.r[k*(e-b)+i-b] = x.e
		}
	}
	return m
}

// wgradExpertRows is wgradExpert for the output rows sel of expert e's dW only, passing
// element (sel[k], j) as (k, j): the same reduction, element for element, on the same
// operands (operand rows are independent in reduceAcc).
func (x *encl) wgradExpertRows(dout, in rowsrc, nOut, nIn, e int, sel []int32, set func(k, j int, c, r float64)) {
	b, end := x.rowsOf(e)
	if end <= b || len(sel) == 0 {
		return
	}
	A := x.operand(x.colsMatSel(dout, b, end, nOut, sel)) // len(sel) × rows
	// nIn × rows, shared by the parts of a split expert (x.ops, parallel.go)
	B, bi, done := x.shared(e, func(y *encl) mat { return y.colsMat(in, b, end, nIn) })
	defer done()
	mp := x.slotMagnitudes(A, B)
	reduceAccB(x.d, A, B, bi, nil, !x.noRound, x.rpr(), x.ws, func(i, j int, c, r float64) {
		if mp != nil {
			r = slotsRadius(x.d, x.ct.WGradSlots, end-b, r, mp[i*nIn+j])
		}
		c, r = x.round(c, r)
		set(i, j, c, r)
	})
}

// wgradSampled is the sampled judgement of a weight gradient (nOut×nIn per expert, element
// (e, i, j) at at(e, i, j)): experts without rows whole (exact zeros), the others on the
// output rows drawn per expert.
func (ck *checker) wgradSampled(en *encl, t moe.Tensor, got []float32, dout, in rowsrc, nOut, nIn int, at func(e, i, j int) int) {
	c := ck.c
	n := nOut * nIn
	stat := ck.stat(t, true, len(got))
	ss := ck.sm.newStat(t, true, "dw-row", len(got))
	type job struct {
		e   int
		sel []int32
	}
	var jobs []job
	judged := 0
	always := []int{0, 1, nOut - 2, nOut - 1}
	if nOut == 2*c.I {
		always = append(always, c.I-1, c.I) // the gate/up halves' edges (concatenated layout)
	}
	for e := 0; e < c.E; e++ {
		if b, end := en.rowsOf(e); end <= b {
			jobs = append(jobs, job{e, nil}) // whole: exact zeros
			judged += n
			continue
		}
		bad := nonFiniteOutRows(got[e*n:(e+1)*n], nOut, nIn, at(0, 0, 1) == 1)
		sel := ck.sm.stratum(nil, t, true, e, 0, nOut, always, func(i int) bool { return bad[i] }, ss)
		judged += len(sel) * nIn
		// the drawn rows in parts (parallel.go), in order
		b, end := en.rowsOf(e)
		q := gemmParts(len(sel), nIn, end-b, ck.taskSize())
		for p := range q {
			lo, hi := partBounds(len(sel), q, p), partBounds(len(sel), q, p+1)
			jobs = append(jobs, job{e, sel[lo:hi:hi]})
		}
	}
	ss.done(judged)
	parts := grow(&ck.sb.parts, len(jobs))
	ck.sb.spans = ck.sb.spans[:0]
	for _, jb := range jobs {
		if jb.sel != nil {
			ck.sb.spans = append(ck.sb.spans, span{-1, -1, jb.e, jb.sel})
		}
	}
	en.ops = en.newExpertOps(ck.sb.spans) // a split expert's input rows transposed once
	defer func() { en.ops = nil }()
	one := func(x *encl, k int) {
		jb := jobs[k]
		p := &parts[k]
		if jb.sel == nil {
			// no rows: the enclosure is exactly zero everywhere (wgradExpert derives nothing)
			zero := x.newIvec(n)
			ck.compareSpan(p, t, true, got[jb.e*n:(jb.e+1)*n], jb.e*n, zero)
			return
		}
		enc := x.newIvec(len(jb.sel) * nIn)
		x.wgradExpertRows(dout, in, nOut, nIn, jb.e, jb.sel, func(k, j int, cc, r float64) {
			enc.c[k*nIn+j], enc.r[k*nIn+j] = cc, r
		})
		for kk, i := range jb.sel {
			for j := 0; j < nIn; j++ {
				q := at(jb.e, int(i), j)
				ck.compareSpan(p, t, true, got[q:q+1], q, subIvec(enc, kk*nIn+j, 1))
			}
		}
	}
	if ck.taskLog != nil {
		f := one
		one = func(x *encl, k int) {
			t0 := ck.clock()
			f(x, k)
			ck.taskLog(t, span{-1, -1, jobs[k].e, jobs[k].sel}, ck.clock()-t0)
		}
	}
	if en.forSpans(len(jobs), len(got)*8, one) {
		ck.mergeParts(stat, parts)
	}
}

// Coverage is a one-line account of what a sampled check judged: the fraction of the sampled
// tensors' elements, and the largest MissM over them.
func (r *SampleReport) Coverage() string {
	var n, j, m int
	for _, t := range r.Tensors {
		n += t.Elements
		j += t.JudgedElements
		m = max(m, t.MissM)
	}
	frac := 1.0
	if n > 0 {
		frac = float64(j) / float64(n)
	}
	return fmt.Sprintf("judged %.3g%% of the elements of %d sampled tensors (fraction %g, seed %d); a fault the full check flags in ≥ %d units (rows, tokens) of a tensor outside the always-judged ones escapes with probability ≤ %g",
		100*frac, len(r.Tensors), r.Fraction, r.Seed, m, SampleDelta)
}

// Write prints the coverage table of a sampled check, one line per sampled tensor.
func (r *SampleReport) Write(w io.Writer, indent string) error {
	if _, err := fmt.Fprintf(w, "%ssampled check: fraction %g, seed %d; per tensor the units judged (forced: group edges, non-finite values) and f_min, the smallest fraction drawn in a stratum: a fault corrupting m units outside the forced ones escapes with probability ≤ (1 − f_min)^m, ≤ %g from m = miss-m on\n", indent, r.Fraction, r.Seed, SampleDelta); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s  %-8s %-7s %9s %9s %8s %10s %8s %8s\n", indent, "tensor", "unit", "units", "judged", "forced", "elem frac", "f_min", "miss-m")
	for _, t := range r.Tensors {
		ef := 1.0
		if t.Elements > 0 {
			ef = float64(t.JudgedElements) / float64(t.Elements)
		}
		fmt.Fprintf(w, "%s  %-8s %-7s %9d %9d %8d %10.4f %8.4f %8d\n", indent, t.Name(), t.Unit, t.Units, t.Judged, t.Forced, ef, t.MinFrac, t.MissM)
	}
	return nil
}
