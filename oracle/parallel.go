package oracle

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/moecheck/moecheck/internal/f64gemm"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/moe"
)

// Parallel structure of the enclosure computation (issue 14, "real shapes in seconds").
//
// Every stage splits over experts (the GEMM stages and the weight gradients: one expert's
// reduction is one reduceAcc call, the same call with the same operands whatever the split;
// in the stage-local checks, fixed parts of an expert: see "Tasks of the GEMM stages"
// below) or over rows (the elementwise stages, the K-slot sums, the comparisons). Each
// output element is written by exactly one goroutine, with the operations and their order
// of the serial loop, so enclosures and verdicts are bitwise the same on one goroutine or
// many. The per-expert operands (transposed weights, transposed rows) come from a worker's
// own scratch, reused from expert to expert (or, shared by a split expert's parts, from a
// scratch of the pool held while the expert's parts run: expertOps), so memory does not
// grow with the expert count.

// scratch is one expert worker's memory: its reduction workspace and an arena for the
// expert's operands (reset before each expert).
type scratch struct {
	ws workspace
	ar arena
}

// scratchPool hands scratch to the expert workers of a Checker and keeps it between cases.
type scratchPool struct {
	mu   sync.Mutex
	free []*scratch
}

func (p *scratchPool) get() *scratch {
	if p == nil {
		return &scratch{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free = p.free[:n-1]
		return s
	}
	return &scratch{}
}

func (p *scratchPool) put(s *scratch) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.free = append(p.free, s)
	p.mu.Unlock()
}

// parallel reports whether a loop of work element operations splits (see par.For).
func (en *encl) parallel(work int) bool {
	return en.sp.Workers > 1 && work >= 2*en.sp.MinWork
}

// forExperts calls fn(x, e) for every expert e with rows (or every expert when all is set),
// where x is en with a worker's own workspace and scratch arena (reset before each expert):
// fn must allocate its outputs from en before (they are shared) and only the expert's
// operands from x. cost is the work of one expert. Serial when en does not split or the
// work is small: then x is en itself and nothing changes from the serial computation.
func (en *encl) forExperts(all bool, cost int, fn func(x *encl, e int)) {
	var es []int
	for e := 0; e < en.E; e++ {
		if b, end := en.rowsOf(e); all || end > b {
			es = append(es, e)
		}
	}
	workers := min(en.sp.Workers, len(es))
	if workers <= 1 || !en.parallel(cost*len(es)) {
		for _, e := range es {
			if stopped(en.stop) {
				return
			}
			fn(en, e)
		}
		return
	}
	en.onWorkers(len(es), workers, func(x *encl, i int) { fn(x, es[i]) })
}

// onWorkers calls fn(x, k) for every k in [0, n) on workers goroutines, handing the indices
// out in order; each goroutine has its own scratch from en's pool (x is en with that
// workspace and arena, the arena reset before each k). It hands out no index once en.stop is
// closed, and returns when every call has returned.
func (en *encl) onWorkers(n, workers int, fn func(x *encl, k int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			s := en.pool.get()
			defer en.pool.put(s)
			x := *en
			x.ws, x.ar = &s.ws, &s.ar
			for {
				k := int(next.Add(1)) - 1
				if k >= n || stopped(en.stop) {
					return
				}
				s.ar.reset()
				fn(&x, k)
			}
		}()
	}
	wg.Wait()
}

// forRows calls body(lo, hi) on disjoint ranges covering [0, n), split over en's workers
// when the loop is large (cost: element operations per index). body must only write
// elements of its own indices; those that need scratch make their own.
func (en *encl) forRows(n, cost int, body func(lo, hi int)) {
	if !en.parallel(n * cost) {
		body(0, n)
		return
	}
	stop := en.stop
	par.For(en.sp, n, cost, body, func(f func(int, int), lo, hi int) {
		if !stopped(stop) {
			f(lo, hi)
		}
	})
}

// stopped reports whether stop is closed (never for nil).
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// arenaMark is a position in an arena: release returns the space handed out after it.
type arenaMark struct{ cur, off int }

func (a *arena) mark() arenaMark {
	if a == nil {
		return arenaMark{}
	}
	return arenaMark{a.cur, a.off}
}

// release makes the space handed out since m reusable (the slices must not be used after).
func (a *arena) release(m arenaMark) {
	if a != nil {
		a.cur, a.off = m.cur, m.off
	}
}

// rowsrc is a row-major stage operand of the enclosure: an enclosure held whole (v), or a
// stage the path reported (p: exactly known float32 values, NaN and ±Inf unknown), read
// element by element or made into point enclosures one expert's rows at a time, so that the
// stage-local checks never hold a whole stage in float64 (issue 14: bounded memory).
type rowsrc struct {
	v  ivec
	p  []float32
	pt bool
}

func ivsrc(v ivec) rowsrc      { return rowsrc{v: v} }
func ptsrc(p []float32) rowsrc { return rowsrc{p: p, pt: true} }

// at is element i as an enclosure (for p: the value exactly, or unknown if NaN or ±Inf).
func (s rowsrc) at(i int) rv {
	if !s.pt {
		return rv{s.v.c[i], s.v.r[i]}
	}
	f32 := s.p[i]
	if math.Float32bits(f32)&0x7f800000 == 0x7f800000 { // NaN or ±Inf
		return unknownRV()
	}
	return rv{float64(f32), 0}
}

// rows returns rows [b, e) (row length n) as a mat: a view of v, or point enclosures of p in
// x's scratch.
func (s rowsrc) rows(x *encl, b, e, n int) mat {
	if !s.pt {
		return rowsMat(s.v, b, e, n)
	}
	return s.rowsInto(x.newMatDirty(e-b, n), b, e, n) // rowsInto writes every element
}

// rowsInto is rows writing p's point enclosures into m (sized (e−b)×n); a view for v.
func (s rowsrc) rowsInto(m mat, b, e, n int) mat {
	if !s.pt {
		return rowsMat(s.v, b, e, n)
	}
	mc, mr := m.c[:(e-b)*n], m.r[:(e-b)*n]
	for i, f32 := range s.p[b*n : e*n] {
		if math.Float32bits(f32)&0x7f800000 == 0x7f800000 { // NaN or ±Inf
			mc[i], mr[i] = 0, math.NaN()
			continue
		}
		mc[i], mr[i] = float64(f32), 0
	}
	return m
}

// Tasks of the GEMM stages (issue 14: no idle cores at a stage's end). One task per
// expert left the cores idle at the end of every GEMM stage of a real layer: 16 local
// experts of an EP-8 rank on 16 cores, whose reductions take up to 15 % longer one than
// another, so the stage waited for the slowest. The stage-local checks therefore split an
// expert's rows (h1, h2, d_act, d_xs: chunkSpans) and an expert's weight gradient
// (dW1, dW2: wgradSpans, blocks of output rows or columns) into parts of about
// 2^27 multiply-adds, at least 256 rows, at least 4 (defaultTasks), never splitting a reduction:
// every output element keeps one reduceAcc over its whole reduction, from the same operand
// rows.
//
// The parts are a function of the case alone (an expert's row count, the product's n and
// k), never of the worker count, so verdicts stay the same on any number of cores. In the
// default build they are also the unsplit check's, bit for bit: gemmParts splits only
// where every part is reduced by the same code as the whole (reduceAcc's fused loops below
// 2^15 multiply-adds or gonum's Dgemm above, gonum blocked alike: f64gemm.GonumBlocked),
// so each element gets the same bits (f64gemm.RowExact). With OpenBLAS (build tag openblas)
// an element's bits may depend on which rows share its product (RowExact is false there):
// that is sound, any summation order being within reduceAcc's bound (dgemm.go), and
// deterministic, the parts being fixed; the verdicts are then those of the parts, the same
// on any core count.

// taskSize is the size of the parts of an expert: about work multiply-adds, at least rows
// rows of the product each, and at least parts parts where it splits at all.
type taskSize struct{ work, rows, parts int }

// defaultTasks is the parts' size.
//
// work: an expert of a real layer splits into a few parts, while every part stays large
// against a product's fixed costs. What all parts of an expert read is made once and shared
// (expertOps), not once per part: the transposed weights and the weights' row information
// (n·k element operations each), a weight gradient's transposed input rows (standard
// layout; in the transposed one each block of columns transposes all of the expert's d_out
// rows).
//
// rows: each part's product still packs the whole of the other operand (a BLAS packs B per
// call; reduceAcc makes two or three products of it): about 1.1 ns an element of B per
// product against 0.08 ns a multiply-add with one-threaded OpenBLAS on the development
// machine, an overhead of about 14/m for parts of m rows. BenchmarkStageMakespan at the
// Qwen3-30B-A3B EP-8 rank, T = 4,096 (256 rows an expert) measured parts of 43 rows of h1
// and d_xs at +27 % and +23 % CPU, which ate the gain of their better schedule; parts of at
// least 256 rows cost at most about 5 %.
//
// parts: an expert in two or three parts packed worse than whole ones: at T = 8,192
// (experts of 500 to 800 rows, in parts of 256 to 400) the 16 experts made about 40 tasks,
// two and a half rounds of 16 workers, and BenchmarkStageMakespan's 16-worker schedule of
// h1 took 0.253 s against 0.220 s whole. A split expert has at least four parts. So at
// T = 4,096 and 8,192 the row GEMMs stay whole and the weight gradients split in six
// (dW1 at T = 4,096; dW1 and dW2 at 8,192); at T = 16,384 (about 1,024 rows an expert) the
// row GEMMs split in four where an expert has 1,024 rows or more.
var defaultTasks = taskSize{work: 1 << 27, rows: 256, parts: 4}

// gemmParts is the number of near-equal parts the m rows of an m×n product with reduction
// length k split into for tasks of size ts (zero: one part): about m·n·k/ts.work, with at
// least ts.rows rows each, fewer where a part would not be reduced as the whole is
// (sameReduction), 1 for a small product or fewer than ts.parts parts.
func gemmParts(m, n, k int, ts taskSize) int {
	if m <= 1 || n <= 0 || k <= 0 || ts.work <= 0 {
		return 1
	}
	q := min(m/max(ts.rows, 1), m*n*k/ts.work)
	for q > 1 && !sameReduction(m, m/q, n, k) {
		q--
	}
	if q < ts.parts {
		return 1
	}
	return max(q, 1)
}

// sameReduction reports whether a product of mc of an m×n product's rows (same n and k)
// reduces every element by the same code as the whole: both fused (reduceAcc and mulNT
// below 2^15 multiply-adds) or both not, and gonum's Dgemm blocked alike.
func sameReduction(m, mc, n, k int) bool {
	fused := func(r int) bool { return r*n*k < 1<<15 }
	return fused(m) == fused(mc) && f64gemm.GonumBlocked(m, n) == f64gemm.GonumBlocked(mc, n)
}

// partBounds is the start of part p of q near-equal parts of m items (p = q: m).
func partBounds(m, q, p int) int { return p * m / q }

// chunkSpans returns the spans sp with every expert span (e ≥ 0) of a GEMM stage (row
// length n, reduction length k) split into gemmParts near-equal spans of consecutive rows
// (a sampled span: of consecutive listed rows), in order, so that the spans still cover
// the stage's elements in order (compareSpans merges them so). ts is gemmParts's
// (checker.taskSize; zero keeps sp as it is).
func (en *encl) chunkSpans(out, sp []span, n, k int, ts taskSize) []span {
	for _, s := range sp {
		m := s.hi - s.lo
		if s.rows != nil {
			m = len(s.rows)
		}
		q := 1
		if s.e >= 0 {
			q = gemmParts(m, n, k, ts)
		}
		if q == 1 {
			out = append(out, s)
			continue
		}
		for p := range q {
			a, b := partBounds(m, q, p), partBounds(m, q, p+1)
			if s.rows != nil {
				out = append(out, span{s.lo, s.hi, s.e, s.rows[a:b:b]})
				continue
			}
			out = append(out, span{s.lo + a, s.lo + b, s.e, nil})
		}
	}
	return out
}

// gemmTasks returns the tasks of GEMM stage t (row length n) over its spans sp: the spans
// split into parts (chunkSpans, appended to out) and the operands the parts of an expert
// share (newExpertOps). The check's stages and the prepared work (prepare.go) both take
// their tasks from here, so a prepared enclosure is computed part by part as the check
// computes it.
func (en *encl) gemmTasks(out, sp []span, t moe.Tensor, n int, ts taskSize) ([]span, *expertOps) {
	out = en.chunkSpans(out, sp, n, gemmK(en.c, t), ts)
	return out, en.newExpertOps(out)
}

// gemmK is the reduction length of GEMM stage t (h1, h2, d_act, d_xs), 0 for another stage.
func gemmK(c *moe.Case, t moe.Tensor) int {
	switch t {
	case moe.TensorH1, moe.TensorDAct:
		return c.H
	case moe.TensorH2:
		return c.I
	case moe.TensorDXs:
		return 2 * c.I
	}
	return 0
}

// wgradSpans is the tasks of a weight gradient whose experts' dW hold major × minor
// elements, major-dimension row by row (the output rows of the standard layout, the input
// columns of the transposed one; span rows are units of minor elements, expert e's at
// [e·major, (e+1)·major)): per expert, its major rows in gemmParts near-equal blocks for the
// product of the expert's rows (its reduction length), one span for an expert without rows
// (exact zeros); appended to out in element order. ts is gemmParts's.
func (en *encl) wgradSpans(out []span, major, minor int, ts taskSize) []span {
	for e := 0; e < en.E; e++ {
		b, end := en.rowsOf(e)
		q := 1
		if end > b {
			q = gemmParts(major, minor, end-b, ts)
		}
		for p := range q {
			out = append(out, span{e*major + partBounds(major, q, p), e*major + partBounds(major, q, p+1), e, nil})
		}
	}
	return out
}

// taskSize is the size of the parts of the GEMM stages and weight gradients for gemmParts:
// defaultTasks, the Checker's own for tests, zero (whole experts) with
// Checker.wholeExperts.
func (ck *checker) taskSize() taskSize { return tasksOf(ck.wholeExperts, ck.partSize) }

// taskSize is the parts' size of the Checker's checks (its prepared work's too).
func (k *Checker) taskSize() taskSize { return tasksOf(k.wholeExperts, k.partSize) }

// tasksOf is the parts' size: none with wholeExperts, else partSize where set, else
// defaultTasks.
func tasksOf(wholeExperts bool, partSize taskSize) taskSize {
	switch {
	case wholeExperts:
		return taskSize{}
	case partSize.work > 0:
		return partSize
	}
	return defaultTasks
}

// expertOps is the operand that the parts of each split expert share in one stage (the
// expert's weights for h1, h2, d_act and d_xs, transposed for the last two; the expert's
// input rows, transposed, for a weight gradient split by output rows), with its row
// information (opInfo): built once, by the first part to need it, into a scratch of its own
// from en's pool, read by the expert's other parts, and handed back to the pool when the
// expert's last part is done. An expert's parts are handed out one after the other
// (largestFirst keeps them together), so an expert whose operand is held has a part
// running or is the expert being handed out: at most one operand per worker, and one more,
// is held at a time. Experts of one part build theirs in the part's own scratch, as before
// the split.
type expertOps struct {
	pool *scratchPool
	ops  []expertOp
}

type expertOp struct {
	parts int // the expert's parts in the stage
	once  sync.Once
	left  atomic.Int32 // parts not done
	s     *scratch
	m     mat
	bi    *opInfo
}

// newExpertOps counts the parts of every expert in spans (e ≥ 0); nil when no expert has
// more than one.
func (en *encl) newExpertOps(spans []span) *expertOps {
	o := &expertOps{pool: en.pool, ops: make([]expertOp, en.E)}
	split := false
	for _, s := range spans {
		if s.e >= 0 {
			op := &o.ops[s.e]
			op.parts++
			op.left.Add(1)
			split = split || op.parts > 1
		}
	}
	if !split {
		return nil
	}
	return o
}

// shared returns expert e's operand, built by build(y) (y: x with the operand's own
// scratch) and made a GEMM operand (operand) on first use, its row information (nil for an
// empty operand), and done, which the caller calls once it has finished reading them. For
// an expert of one part (or x.ops nil), build runs in x's scratch and bi is nil.
func (x *encl) shared(e int, build func(y *encl) mat) (m mat, bi *opInfo, done func()) {
	if x.ops == nil || x.ops.ops[e].parts <= 1 {
		return x.operand(build(x)), nil, func() {}
	}
	o := x.ops
	op := &o.ops[e]
	op.once.Do(func() {
		op.s = o.pool.get()
		op.s.ar.reset()
		y := *x
		y.ar, y.ws = &op.s.ar, &op.s.ws
		op.m = y.operand(build(&y))
		if len(op.m.c) > 0 {
			op.bi = newOpInfo(x.d, op.m, y.ws, y.ar.getDirty(len(op.m.c)))
		}
	})
	return op.m, op.bi, func() {
		if op.left.Add(-1) == 0 {
			o.pool.put(op.s)
		}
	}
}
