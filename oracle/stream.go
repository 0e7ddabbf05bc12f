package oracle

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/poison"
	"github.com/moecheck/moecheck/moe"
)

// Streaming stage checks (issue 14, bounded memory): a stage of a real layer has S = T·K
// rows, most of them sentinel tail rows at EP > 1, and its enclosure in float64 center and
// radius is four times the stage's own size. The stage-local checks therefore derive and
// compare a stage span by span of rows (an expert's rows for the GEMM stages, blocks of rows
// otherwise), each span's enclosure in a worker's scratch, and merge the spans' statistics
// and failures in row order: the verdict is the one compareLoc gives on the whole tensor.

// span is the rows [lo, hi) of a stage: expert e's rows, or (e −1) rows of no one expert.
// rows, when non-nil, lists the rows of [lo, hi) a sampled check judges (sample.go), in
// increasing order; nil: every row.
type span struct {
	lo, hi, e int
	rows      []int32
}

// streamBufs is the streaming checks' bookkeeping, kept by a Checker between cases (a small
// case's check then allocates none of it).
type streamBufs struct {
	spans  []span
	chunks []span    // the spans split into tasks (parallel.go's chunkSpans)
	order  orderBufs // the order the spans run in (largestFirst)
	parts  []spanPart
	cparts []statPart
	bad    []bool
}

// blocks splits rows [lo, hi) of length n into spans of about 1<<16 elements, appended to
// out.
func blocks(out []span, lo, hi, n int) []span {
	per := max(1, (1<<16)/max(n, 1))
	for b := lo; b < hi; b += per {
		out = append(out, span{b, min(b+per, hi), -1, nil})
	}
	return out
}

// expertSpans is the spans of the GEMM stages: each expert's rows (experts with rows, in
// order), then the tail rows [R, S) in blocks, appended to out.
func (en *encl) expertSpans(out []span, n int) []span {
	for e := 0; e < en.E; e++ {
		if b, end := en.rowsOf(e); end > b {
			out = append(out, span{b, end, e, nil})
		}
	}
	return blocks(out, en.R, en.S, n)
}

// spanPart is one span's share of compareLoc's statistics and failures.
type spanPart struct {
	unknown, exact, failed int
	maxRatio               float64
	aggs                   [4]agg // by streamChecks
}

var streamChecks = [4]string{CheckSignature, CheckNonFinite, CheckBound, CheckStage}

// better reports whether f is a worse failure than g (agg keeps the first of the worst).
func better(f, g Failure) bool {
	return f.Ratio > g.Ratio || (math.IsInf(f.Ratio, 1) && math.IsNaN(f.Got) && !math.IsNaN(g.Got))
}

// merge adds the failures aggregated by b, which follow a's in element order: the same
// aggregate as adding them one by one (ratios are never NaN here, so "worse" is a strict
// weak order and the first worst of the concatenation is a's unless b's is worse).
func (a *agg) merge(b agg) {
	if !b.set {
		return
	}
	if !a.set {
		*a = b
		return
	}
	n := a.f.Count + b.f.Count
	if better(b.f, a.f) {
		a.f = b.f
	}
	a.f.Count = n
}

// compareSpans is compareLoc (a stage, or local output, of row length n) with the
// enclosure derived span by span: enc(x, s) returns the enclosure of rows s ((s.hi−s.lo)·n
// elements) from x's scratch. Spans run on en's workers, each with its own scratch.
func (ck *checker) compareSpans(en *encl, name moe.Tensor, local bool, got []float32, n int, spans []span, enc func(x *encl, s span) ivec) {
	ck.compareSpansTail(en, name, local, got, n, spans, enc, ruleNone, nil)
}

// tailRule names how the tail spans of a stage are known (checker.tailOf, stages.go); a
// value, not a function, so that a small case's check allocates nothing for it.
type tailRule uint8

const (
	ruleNone    tailRule = iota // derive every span
	ruleZero                    // tailZero
	ruleUnknown                 // tailUnknown
	ruleAct                     // act, from the path's h1 tail
	ruleO                       // o, from the path's h2 tail
	ruleDO                      // d_o: the tokens' dY
)

// tailKind is what a span of the sentinel tail (rows ≥ R) of a stage encloses, as its
// stage's tail rule says before any enclosure is derived.
type tailKind uint8

const (
	tailDerive  tailKind = iota // not known without deriving it: enc as for any span
	tailZero                    // every element exactly zero: center ±0, radius +0
	tailUnknown                 // every element unknown (the path leaves the rows unwritten)
	tailMatch                   // every element exactly known (radius 0) and equal to the path's value
)

// compareSpansTail is compareSpans where rule (with the path's stages), when not ruleNone,
// tells (checker.tailOf) for a span of tail rows
// (s.e < 0, s.lo ≥ R: most rows of a rank of a large expert-parallel world, 7/8 of S at
// EP 8) what its enclosure is, so that it need not be derived element by element:
//
//   - tailUnknown: compareSpan would count every element unknown and nothing else; so does
//     this;
//   - tailZero: compareSpan against (±0, 0) counts an element exact and passes it exactly
//     when it is ±0 (ratio 0, and a radius of 0 never raises MaxRatio); so a span whose
//     values are all ±0 counts them exact, and any other span is compared as before, against
//     the enclosure enc derives;
//   - tailMatch (tailOf compared the span's values with the centers of an
//     enclosure it knows to be exact, finite, and found them equal): compareSpan would count
//     every element exact and pass it with ratio 0; so does this.
//
// The verdict is therefore bitwise compareSpans's (TestTailFastBitwise); ck.fullTails turns
// the shortcut off.
func (ck *checker) compareSpansTail(en *encl, name moe.Tensor, local bool, got []float32, n int, spans []span, enc func(x *encl, s span) ivec, rule tailRule, stages *gpu.Stages) {
	st := ck.stat(name, local, len(got))
	parts := grow(&ck.sb.parts, len(spans))
	if ck.fullTails {
		rule = ruleNone
	}
	one := func(x *encl, k int) {
		s := spans[k]
		if s.rows != nil {
			// a sampled span: the listed rows, against their enclosures in list order
			enc := enc(x, s)
			for q, r := range s.rows {
				lo := int(r) * n
				ck.compareSpan(&parts[k], name, local, got[lo:lo+n], lo, subIvec(enc, q*n, n))
			}
			return
		}
		g := got[s.lo*n : s.hi*n]
		if rule != ruleNone && s.e < 0 && s.lo >= en.R {
			switch ck.tailOf(x, rule, stages, s, g) {
			case tailMatch:
				parts[k].exact += len(g)
				ck.tailHits.Add(1)
				return
			case tailUnknown:
				parts[k].unknown += len(g)
				ck.tailHits.Add(1)
				return
			case tailZero:
				if allZero32(g) {
					parts[k].exact += len(g)
					ck.tailHits.Add(1)
					return
				}
			}
		}
		ck.compareSpan(&parts[k], name, local, g, s.lo*n, enc(x, s))
	}
	run := ck.logged(name, spans, one)
	if order := en.largestFirst(name, spans, &ck.sb.order); order != nil && !ck.wholeExperts {
		f := run
		run = func(x *encl, k int) { f(x, order[k]) }
	}
	if en.forSpans(len(spans), len(got)*8, run) {
		ck.mergeParts(st, parts)
	}
}

// largestFirst is the order to run spans in (parallel.go: largest first; the parts merge in
// span order whatever the order they ran in), in *buf, or nil for the spans' own order
// (no span of an expert).
//
// The spans of experts go first, the experts by decreasing work of their largest part
// (rows, times the expert's rows for a weight gradient), each expert's parts together and
// in order, then the others (the sentinel tail, cheap) in order. In span order, an expert
// left whole among split ones could start last and finish long after the rest (an expert
// of 1,000 rows, whole, after ones of 1,030 rows in four parts: the Qwen3-30B-A3B EP-8
// rank at T = 16,384). Keeping an expert's parts together keeps expertOps's bound: an
// expert's shared operand is held only while one of its parts runs, or its next is handed
// out.
func (en *encl) largestFirst(name moe.Tensor, spans []span, buf *orderBufs) []int {
	size := func(s span) int {
		n := s.hi - s.lo
		if s.rows != nil {
			n = len(s.rows)
		}
		if name == moe.TensorDW1 || name == moe.TensorDW2 {
			b, end := en.rowsOf(s.e)
			n *= end - b
		}
		return n
	}
	big := grow(&buf.big, en.E) // expert → work of its largest part
	has := false
	for _, s := range spans {
		if s.e >= 0 {
			big[s.e] = max(big[s.e], size(s))
			has = true
		}
	}
	if !has {
		return nil
	}
	order := buf.order[:0]
	for k := range spans {
		order = append(order, k)
	}
	slices.SortStableFunc(order, func(a, b int) int {
		sa, sb := spans[a], spans[b]
		switch {
		case sa.e < 0 || sb.e < 0:
			return cmp.Compare(b2i(sa.e < 0), b2i(sb.e < 0)) // experts first
		case big[sa.e] != big[sb.e]:
			return cmp.Compare(big[sb.e], big[sa.e])
		}
		return cmp.Compare(sa.e, sb.e)
	})
	buf.order = order
	return order
}

// orderBufs is largestFirst's scratch.
type orderBufs struct{ order, big []int }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// logged is one, reporting each call's span and duration to ck.taskLog when it is set.
func (ck *checker) logged(name moe.Tensor, spans []span, one func(x *encl, k int)) func(x *encl, k int) {
	if ck.taskLog == nil {
		return one
	}
	return func(x *encl, k int) {
		t0 := ck.clock()
		one(x, k)
		ck.taskLog(name, spans[k], ck.clock()-t0)
	}
}

// clock is the time tasks are timed with for taskLog: ck.taskClock, or the wall clock.
func (ck *checker) clock() time.Duration {
	if ck.taskClock != nil {
		return ck.taskClock()
	}
	return time.Duration(time.Now().UnixNano())
}

// forSpans calls one(x, k) for every k in [0, n) — spans of a comparison, work element
// operations in all — on en's workers (onWorkers), or, when en does not split or the work is
// small, on the calling goroutine with x = en and its arena released after each call. It
// reports false when en.stop stopped the serial loop.
func (en *encl) forSpans(n, work int, one func(x *encl, k int)) bool {
	workers := min(en.sp.Workers, n)
	if workers > 1 && en.parallel(work) {
		en.onWorkers(n, workers, one)
		return true
	}
	for k := range n {
		if stopped(en.stop) {
			return false
		}
		m := en.ar.mark()
		one(en, k)
		en.ar.release(m)
	}
	return true
}

// mergeParts adds the spans' statistics to st and their failures, in span order, to the
// verdict.
func (ck *checker) mergeParts(st *TensorStat, parts []spanPart) {
	var aggs [4]agg
	for _, p := range parts {
		st.Unknown += p.unknown
		st.Exact += p.exact
		st.Failed += p.failed
		if p.maxRatio > st.MaxRatio {
			st.MaxRatio = p.maxRatio
		}
		for i := range aggs {
			aggs[i].merge(p.aggs[i])
		}
	}
	for i := range aggs {
		if aggs[i].set {
			ck.fail(aggs[i].f)
		}
	}
}

// allZero32 reports whether every value of v is +0 or −0.
func allZero32(v []float32) bool {
	var or uint32
	for _, x := range v {
		or |= math.Float32bits(x)
	}
	return or&0x7fffffff == 0
}

// allPosZero32 reports whether every value of v is +0 (bits 0).
func allPosZero32(v []float32) bool {
	var or uint32
	for _, x := range v {
		or |= math.Float32bits(x)
	}
	return or == 0
}

// compareSpan is compareLoc's element loop (a stage: output false) over got, whose element
// 0 is the tensor's element off, against enc, into p.
func (ck *checker) compareSpan(p *spanPart, name moe.Tensor, local bool, got []float32, off int, enc ivec) {
	nonFinite := ck.c.NonFinite
	ec, er := enc.c[:len(got)], enc.r[:len(got)]
	for k, g32 := range got {
		c, r := ec[k], er[k]
		if !finite(r) || c != c { // !enc.known(k)
			p.unknown++
			continue // a stage: signatures only where constrained (compareLoc, output false)
		}
		if r == 0 {
			p.exact++
		}
		g := float64(g32)
		if math.Float32bits(g32)&0x7f800000 == 0x7f800000 { // NaN or ±Inf
			i := off + k
			buf, sig := poison.Of(g32)
			sig = sig && !nonFinite
			loc := ck.locate(name, i)
			check, ci := CheckNonFinite, 1
			detail := "non-finite value where the reference is finite"
			if sig {
				check, ci = CheckSignature, 0
				loc.Buffer = buf
				detail = "poison of buffer " + buf.String() + " reached this tensor: that buffer was read where it was never written"
			}
			p.aggs[ci].add(Failure{Check: check, Tensor: name, Local: local, Worst: loc, Got: g, Want: c, Bound: r, Ratio: math.Inf(1), Detail: detail})
			p.failed++
			continue
		}
		if r == 0 && g == c {
			continue // ratio 0: exact and equal (the common case of the stage checks)
		}
		q := ratioFinite(g, c, r)
		if q <= 1 {
			if q > p.maxRatio && r > 4*ck.c.DType.Ulp(c) {
				p.maxRatio = q
			}
			continue
		}
		p.failed++
		p.aggs[3].add(Failure{Check: CheckStage, Tensor: name, Local: local, Worst: ck.locate(name, off+k), Got: g, Want: c, Bound: r, Ratio: q})
	}
}

// ratioFinite is ratio(got, want, bound) for a finite got (no NaN or Inf test: compareSpan
// has taken those), small enough to be inlined into compareSpan's loop.
func ratioFinite(got, want, bound float64) float64 {
	d := math.Abs(got - want)
	if bound == 0 {
		if d == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return d / bound
}

// The span enclosures of the stage-local checks (stages.go): each derives rows s of a stage
// from the path's own stages, as the whole-stage functions of enclose.go do, into x's
// scratch.

// gemmSpan encloses rows s of a GEMM stage of row length n: expert s.e's rows by gemmRows
// (operand A, weights W, bias), the tail rows zero, or unknown where tailUnknown (the path
// leaves them unwritten).
func (x *encl) gemmSpan(s span, n int, a rowsrc, k int, w func(e int) mat, bias func(e int) []float64, tailUnknown bool) ivec {
	if s.rows != nil && s.e >= 0 {
		// a sampled span: the listed rows only (reduceAcc's rows are independent)
		out := x.newIvec(len(s.rows) * n)
		var b []float64
		if bias != nil {
			b = bias(s.e)
		}
		W, bi, done := x.sharedW(s.e, w)
		x.gemmRowsB(out, n, a.rowList(x, s.rows, k), W, bi, b, 0)
		done()
		return out
	}
	out := x.newIvec((s.hi - s.lo) * n)
	if s.e < 0 {
		if tailUnknown {
			for i := range out.c {
				out.setUnknown(i)
			}
		}
		return out // zero, exactly (masks)
	}
	var b []float64
	if bias != nil {
		b = bias(s.e)
	}
	W, bi, done := x.sharedW(s.e, w)
	x.gemmRowsB(out, n, a.rows(x, s.lo, s.hi, k), W, bi, b, 0)
	done()
	return out
}

// sharedW is x.shared for the weights w(e) of a GEMM stage. The weight functions of
// stages.go allocate from the scratch of the encl they were made with, which is x: while
// w builds an operand the expert's parts share, x points at that operand's scratch.
func (x *encl) sharedW(e int, w func(e int) mat) (mat, *opInfo, func()) {
	return x.shared(e, func(y *encl) mat {
		if y == x {
			return w(e)
		}
		ar, ws := x.ar, x.ws
		x.ar, x.ws = y.ar, y.ws
		defer func() { x.ar, x.ws = ar, ws }()
		return w(e)
	})
}

// grow returns (*buf)[:n] zeroed, growing *buf when needed.
func grow[T any](buf *[]T, n int) []T {
	if cap(*buf) < n {
		*buf = make([]T, n)
	}
	v := (*buf)[:n]
	clear(v)
	return v
}
