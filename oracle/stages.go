package oracle

import (
	"fmt"
	"math"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
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
		ck.fail(Failure{Check: CheckPlan, Tensor: moe.TensorOffsets, Count: 1, Detail: fmt.Sprintf("path reported %d offsets, want E = %d", len(st.Offsets), c.E)})
		return
	}
	for e, o := range st.Offsets {
		if o != p.Offsets[e] {
			ck.fail(Failure{Check: CheckPlan, Tensor: moe.TensorOffsets, Count: 1, Worst: Location{Tensor: moe.TensorOffsets, Index: e, Expert: e, Token: -1, Slot: -1, SortedRow: -1, Row: -1, Col: -1},
				Got: float64(o), Want: float64(p.Offsets[e]), Ratio: 1e300,
				Detail: fmt.Sprintf("offsets[%d] = %d, want %d (inclusive cumulative counts over experts 0..E−1)", e, o, p.Offsets[e])})
			return
		}
	}
	if len(st.Perm) != S {
		ck.fail(Failure{Check: CheckPlan, Tensor: moe.TensorPerm, Count: 1, Detail: fmt.Sprintf("path reported %d sorted rows, want S = %d", len(st.Perm), S)})
		return
	}
	for i, s := range st.Perm {
		if s != p.Perm[i] {
			ck.fail(Failure{Check: CheckPlan, Tensor: moe.TensorPerm, Count: 1, Worst: ck.locate(moe.TensorDRWSorted, i),
				Got: float64(s), Want: float64(p.Perm[i]), Ratio: 1e300,
				Detail: fmt.Sprintf("sorted row %d holds slot %d, want %d (stable sort by expert id, sentinels last)", i, s, p.Perm[i])})
			return
		}
	}
	for _, t := range moe.StageTensors() {
		if got, want := len(st.Tensor(t)), c.Len(t); got != want {
			ck.fail(Failure{Check: CheckShape, Tensor: t, Count: 1, Detail: fmt.Sprintf("stage %s has length %d, want %d", t, got, want)})
			return
		}
	}
	if ck.derive != nil {
		ck.dv = derive(c, p, res, ck.derive, ck.ct) // the comparisons taken from a judged run (derive.go)
	}
	en := newEnclIn(c, p, ck.ar, ck.ws, ck.pool)
	en.sp, en.stop = ck.split(), ck.stop
	en.ct = ck.ct
	en.tailMemo, en.tailHits = !ck.fullTails, ck.tailHits
	pt := ptsrc
	// Each step's enclosure and the point enclosures of its inputs are released once the
	// step is compared, so the check holds one step's intermediates at a time, not every
	// stage's.
	step := func(f func()) {
		if stopped(ck.stop) {
			return // Check reports ErrStopped
		}
		m := en.ar.mark()
		f()
		en.ar.release(m)
	}
	// The stages, span by span of rows (stream.go): an expert's rows for the GEMMs, blocks
	// of rows for the rest; never a whole stage's enclosure at once.
	H, I := c.H, c.I
	// Row blocks end at R, where the sentinel tail begins, so that a tail span holds tail
	// rows only (compareSpansTail); blocks never change a verdict (compareSpans).
	rowBlocks := func(n int) []span {
		ck.sb.spans = blocks(blocks(ck.sb.spans[:0], 0, en.R, n), en.R, S, n)
		return ck.sb.spans
	}
	expertSpans := func(n int) []span { ck.sb.spans = en.expertSpans(ck.sb.spans[:0], n); return ck.sb.spans }
	spans := func(t moe.Tensor, got []float32, n int, sp []span, enc func(x *encl, s span) ivec, rule tailRule) {
		if !stopped(ck.stop) && !ck.take(t, false, len(got)) {
			ph := ck.phase("stage ", t)
			if ck.sm != nil {
				// sampled (sample.go): per expert group the rows drawn, the tail whole
				sp = ck.rowSpans(en, t, got, n)
			}
			if gemmK(c, t) > 0 {
				// an expert's rows in parts (parallel.go): no idle cores at the stage's end
				ck.sb.chunks, en.ops = en.gemmTasks(ck.sb.chunks[:0], sp, t, n, ck.taskSize())
				sp = ck.sb.chunks
				defer func() { en.ops = nil }()
			}
			ck.compareSpansTail(en, t, false, got, n, sp, enc, rule, st)
			ph.End()
		}
	}
	// rows makes a span's enclosure from a row kernel f (which writes row i of s at
	// i − s.lo); for a sampled span, row by row in list order.
	rows := func(n int, f func(x *encl, out ivec, s span)) func(x *encl, s span) ivec {
		return func(x *encl, s span) ivec {
			if s.rows != nil {
				out := x.newIvec(len(s.rows) * n)
				for k, r := range s.rows {
					f(x, subIvec(out, k*n, n), span{int(r), int(r) + 1, s.e, nil})
				}
				return out
			}
			out := x.newIvec((s.hi - s.lo) * n)
			f(x, out, s)
			return out
		}
	}
	spans(moe.TensorXs, st.Xs, H, rowBlocks(H), rows(H, func(x *encl, out ivec, s span) { x.gatherRows(c.X, true, out, s.lo, s.hi, s.lo) }), ruleZero)
	// h1: where the prepared work (Options.Prepared, prepare.go) holds a span's enclosure,
	// computed by h1Span from the gathered X, and the path's xs rows of the span are the
	// operand it was computed from, the enclosure is that one; else it is derived here.
	ck.sb.spans = en.h1Spans(ck.sb.spans[:0])
	spans(moe.TensorH1, st.H1, 2*I, ck.sb.spans, func(x *encl, s span) ivec {
		if v, ok := ck.pre.span(s, st.Xs); ok {
			ck.preparedHits.Add(1)
			return v
		}
		return x.h1Span(s, pt(st.Xs))
	}, ruleZero)
	ck.pre = nil // its memory is free once h1 is compared
	spans(moe.TensorAct, st.Act, I, rowBlocks(I), rows(I, func(x *encl, out ivec, s span) { x.activationRows(pt(st.H1), out, s.lo, s.hi, s.lo) }), ruleAct)
	spans(moe.TensorH2, st.H2, H, expertSpans(H), func(x *encl, s span) ivec {
		return x.gemmSpan(s, H, pt(st.Act), I, func(e int) mat { return x.weightMat(x.w2s[e], H, I) }, x.bias2Of(), false)
	}, ruleZero)
	spans(moe.TensorO, st.O, H, rowBlocks(H), rows(H, func(x *encl, out ivec, s span) { x.weightRows(pt(st.H2), out, s.lo, s.hi, s.lo) }), ruleO)
	spans(moe.TensorDO, st.DO, H, rowBlocks(H), rows(H, func(x *encl, out ivec, s span) { x.gatherRows(c.DY, false, out, s.lo, s.hi, s.lo) }), ruleDO)
	spans(moe.TensorDH2, st.DH2, H, rowBlocks(H), rows(H, func(x *encl, out ivec, s span) { x.dh2Rows(pt(st.DO), out, s.lo, s.hi, s.lo) }), ruleZero)
	spans(moe.TensorDAct, st.DAct, I, expertSpans(I), func(x *encl, s span) ivec {
		return x.gemmSpan(s, I, pt(st.DH2), H, func(e int) mat { return x.transposeExact(x.w2s[e], H, I) }, nil, true)
	}, ruleUnknown)
	spans(moe.TensorDH1, st.DH1, 2*I, rowBlocks(2*I), rows(2*I, func(x *encl, out ivec, s span) {
		x.actBackwardRows(pt(st.H1), pt(st.DAct), out, s.lo, s.hi, s.lo)
	}), ruleZero)
	spans(moe.TensorDXs, st.DXs, H, expertSpans(H), func(x *encl, s span) ivec {
		return x.gemmSpan(s, H, pt(st.DH1), 2*I, func(e int) mat { return x.transposeExact(x.w1s[e], 2*I, H) }, nil, false)
	}, ruleZero)
	// The outputs again, now from the path's own last stages (Failure.Local): the weight
	// gradients expert by expert (stream.go), their bias gradients after both.
	// y and dX token block by token block (compareSpans: compareLocal's verdict without
	// the whole T×H enclosure; TestLocalSpansBitwise), d_rw whole.
	for _, l := range []struct {
		name moe.Tensor
		got  []float32
		rows rowsrc
		how  contract.Sum
	}{{moe.TensorY, res.Y, pt(st.O), en.ct.Combine}, {moe.TensorDX, res.DX, pt(st.DXs), en.ct.Scatter}} {
		if ck.wholeLocal {
			break
		}
		if len(l.got) != c.T*H || stopped(ck.stop) || ck.take(l.name, true, len(l.got)) {
			continue // shape failures are reported with the outputs
		}
		ph := ck.phase("local ", l.name)
		ck.sb.spans = blocks(ck.sb.spans[:0], 0, c.T, H)
		if ck.sm != nil {
			ck.sb.spans = ck.tokenSpan(en, l.name, l.got)
		}
		ck.compareSpans(en, l.name, true, l.got, H, ck.sb.spans, rows(H, func(x *encl, out ivec, s span) {
			x.ksumRows(l.rows, l.how, out, s.lo, s.hi, s.lo)
		}))
		ph.End()
	}
	for _, l := range []struct {
		name moe.Tensor
		got  []float32
		enc  func() ivec
	}{
		{moe.TensorY, res.Y, func() ivec { return en.combine(pt(st.O)) }},
		{moe.TensorDX, res.DX, func() ivec { return en.scatter(pt(st.DXs)) }},
		{moe.TensorDRW, res.DRW, func() ivec { return en.unsort(en.drw(pt(st.DO), pt(st.H2))) }},
	} {
		if l.name != moe.TensorDRW && !ck.wholeLocal {
			continue // by spans above
		}
		if len(l.got) == c.Len(l.name) && ck.take(l.name, true, len(l.got)) {
			continue
		}
		ph := ck.phase("local ", l.name)
		step(func() {
			enc := l.enc()
			if len(l.got) != len(enc.c) {
				return // shape failures are reported with the outputs
			}
			ck.compareLocal(l.name, l.got, enc)
		})
		ph.End()
	}
	wgrad := func(t moe.Tensor, got []float32, dout, in rowsrc, nOut, nIn int, at func(e, i, j int) int) {
		n := nOut * nIn
		if len(got) != c.E*n || stopped(ck.stop) {
			return // shape failures are reported with the outputs
		}
		ph := ck.phase("wgrad ", t)
		defer ph.End()
		if ck.sm != nil {
			ck.wgradSampled(en, t, got, dout, in, nOut, nIn, at)
			return
		}
		// tasks: blocks of each expert's dW along its layout's major dimension (parallel.go)
		rowMajor := at(0, 0, 1) == 1 // element (e, i, j) at (e·nOut + i)·nIn + j
		major, minor := nOut, nIn
		if !rowMajor {
			major, minor = nIn, nOut // at (e·nIn + j)·nOut + i
		}
		ck.sb.spans = en.wgradSpans(ck.sb.spans[:0], major, minor, ck.taskSize())
		if rowMajor {
			en.ops = en.newExpertOps(ck.sb.spans) // an expert's input rows transposed once (parallel.go)
			defer func() { en.ops = nil }()
		}
		ck.compareSpans(en, t, true, got, minor, ck.sb.spans, func(x *encl, s span) ivec {
			out := x.newIvec((s.hi - s.lo) * minor)
			a0, a1 := s.lo-s.e*major, s.hi-s.e*major
			if rowMajor {
				x.wgradBlock(dout, in, nOut, nIn, s.e, a0, a1, 0, nIn, func(i, j int, cc, r float64) {
					out.c[i*nIn+j], out.r[i*nIn+j] = cc, r
				})
				return out
			}
			x.wgradBlock(dout, in, nOut, nIn, s.e, 0, nOut, a0, a1, func(i, j int, cc, r float64) {
				out.c[j*nOut+i], out.r[j*nOut+i] = cc, r
			})
			return out
		})
	}
	wgrad(moe.TensorDW2, res.DW2, pt(st.DH2), pt(st.Act), H, I, c.W2Index)
	wgrad(moe.TensorDW1, res.DW1, pt(st.DH1), pt(st.Xs), 2*I, H, c.W1Index)
	if c.Bias {
		for _, l := range []struct {
			name moe.Tensor
			got  []float32
			dout rowsrc
			nOut int
		}{{moe.TensorDB2, res.DB2, pt(st.DH2), H}, {moe.TensorDB1, res.DB1, pt(st.DH1), 2 * I}} {
			ph := ck.phase("bias ", l.name)
			step(func() {
				enc := concat(en.wgradBias(l.dout, l.nOut, true), true)
				if len(l.got) != len(enc.c) {
					return
				}
				ck.compareLocal(l.name, l.got, enc)
			})
			ph.End()
		}
	}
}

// h1Spans appends the spans of stage h1's comparison to out: the check's and the prepared
// work's (prepare.go), which must be the same spans.
func (en *encl) h1Spans(out []span) []span { return en.expertSpans(out, 2*en.I) }

// h1Span is stage h1's enclosure on span s from operand xs (GEMM 1, docs/path.md step
// 5): the check's from the path's own xs, the prepared work's from the gathered X.
func (x *encl) h1Span(s span, xs rowsrc) ivec {
	return x.gemmSpan(s, 2*x.I, xs, x.H, func(e int) mat { return x.weightMat(x.w1s[e], 2*x.I, x.H) }, x.bias1Of(), false)
}

// tailOf is what the enclosure of stage span s (rows ≥ R) is under rule, as the enclosure
// functions of stages derive it: zero where they leave the rows' zeroed output alone
// (gatherRows with the mask, gemmSpan, dh2Rows, actBackwardRows), unknown where gemmSpan
// marks them so, dY's exact values for d_o. For act and o the tail follows from the path's
// own tail rows of h1 and h2: where those are all +0, every tail element is the one constant
// activationRows (weightRows, row by row) derives from +0 operands, computed here by the
// same calls, and zero when that constant is (±0, 0). got is the path's span.
func (ck *checker) tailOf(x *encl, rule tailRule, st *gpu.Stages, s span, got []float32) tailKind {
	c, H, I := ck.c, ck.c.H, ck.c.I
	switch rule {
	case ruleZero:
		return tailZero
	case ruleUnknown:
		return tailUnknown
	case ruleAct:
		if !allPosZero32(st.H1[s.lo*2*I : s.hi*2*I]) {
			return tailDerive
		}
		a := x.arith().actForwardC(c.Act, x.d, x.ct.Activation, rv{}, rv{})
		if cc, r := x.round(a.v, a.e); cc == 0 && r == 0 {
			return tailZero
		}
	case ruleO:
		if !allPosZero32(st.H2[s.lo*H : s.hi*H]) {
			return tailDerive
		}
		for i := s.lo; i < s.hi; i++ {
			if y := x.weightOf(rv{}, i); y.v != 0 || y.e != 0 {
				return tailDerive
			}
		}
		return tailZero
	case ruleDO:
		// the gathered dY of the rows' tokens (gatherRows without the mask): exact points
		// where dY is finite
		if x.noRound {
			return tailDerive
		}
		for i := s.lo; i < s.hi; i++ {
			t := x.tok[i]
			g := got[(i-s.lo)*H : (i-s.lo+1)*H]
			for h, y := range c.DY[t*H : (t+1)*H] {
				if float64(g[h]) != y || math.IsInf(y, 0) { // a NaN y never compares equal
					return tailDerive
				}
			}
		}
		return tailMatch
	}
	return tailDerive
}
