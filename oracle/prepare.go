package oracle

import (
	"fmt"
	"math"
	"sync"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/internal/hugemem"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/internal/phase"
	"github.com/moecheck/moecheck/moe"
)

// The case-only part of a check, computed while the backend runs the case (issue 14: on the
// GPU host the CUDA run of a real layer leaves the CPU cores idle for seconds, and the
// check's first GEMM stage does not depend on the run's result).
//
// A full stage-local check validates the case, plans it, and judges stage h1 against the
// enclosure of xs·W1ᵀ + b1 computed from the path's own xs. Stage xs passes only where the
// path's xs is the gathered X, so for a conforming path that enclosure is a function of the
// case alone: Prepare computes it from the gathered X (by the check's own span functions,
// h1Spans and h1Span), and the check takes a span's enclosure from it exactly where the
// path's xs rows of the span are the operand it was computed from (sameOperand); anywhere
// else — a failing or odd path — it derives the span from the path's xs as always. The
// verdict is therefore the one the check gives without it (TestPreparedCatalog,
// TestPreparedXsDiffers).

// Prepared is the case-only work of a check of one case, started by Checker.Prepare before
// the backend's run and handed to the check through Options.Prepared. A nil *Prepared is
// valid (nothing prepared). Close it (defer) once the check is done or will not happen.
type Prepared struct {
	c    *moe.Case
	ct   contract.Contract
	quit chan struct{} // closed by Close (or the options' Stop): the work stops
	once sync.Once
	done chan struct{} // closed when the work has returned

	// Written by the work before done is closed, read after.
	complete   bool  // validation and plan ran (not stopped before)
	verr, perr error // c.Validate's and c.Plan's errors
	plan       *moe.Plan
	h1         *preparedH1 // nil: not prepared (invalid case, over the budget, stopped)
}

// preparedH1 is stage h1's enclosure on rows [0, R) (the rows the GEMM writes), computed by
// h1Span over h1Spans from xs, rows [0, R) of X gathered as the path stores xs.
type preparedH1 struct {
	R, H, n int       // rows, xs row length, h1 row length (2I)
	xs      []float32 // R×H: float32(X[tok(i), h])
	enc     ivec      // R×n
}

// prepareMinWork is the work from which Checker.Prepare prepares a case: 2^30 multiply-adds
// of GEMM 1 over all S = T·K rows (an upper bound of its R·2I·H, known before the plan). That
// is about a CPU-second of the oracle's GEMM (12.6 CPU-s for the 1.3·10^10 of the
// Qwen3-30B-A3B EP-8 rank at T = 4,096 on the 2-core machine), against which the hand-off —
// a goroutine, one copy of the enclosure (16 bytes per H multiply-adds) — is noise; and the
// largest case of the default generator (T 300, K 8, H = I = 320: 4.9·10^8) stays below
// it, so the default distribution pays nothing, not even the goroutine.
const prepareMinWork = 1 << 30

// prepareWork is GEMM 1's multiply-adds over all S rows, in float64 (the case is not
// validated yet: no overflow, and a negative dimension gives a negative work).
func prepareWork(c *moe.Case) float64 {
	return float64(c.T) * float64(c.K) * 2 * float64(c.I) * float64(c.H)
}

// preparedBytes is the memory the prepared h1 holds for R rows: xs in float32 (4H bytes a
// row) and the enclosure's center and radius in float64 (2·2I·8 = 32I bytes a row).
func preparedBytes(R, H, I int) float64 {
	return float64(R) * (4*float64(H) + 32*float64(I))
}

// preparedBudget is the most memory the prepared h1 may hold: the case's own size (its
// float64 inputs, weights and routing weights, moe.Config.Elements). A check already holds
// the case and the path's result, whose stages alone (S rows of xs, h1, act, h2, o, d_o,
// d_h2, d_act, d_h1, d_xs in float32) are several times the case at a real layer; a budget of
// the case's size at most doubles the inputs' footprint while the run is in flight, and the
// enclosure is released as soon as stage h1 is compared. (The Qwen3-30B-A3B EP-8 rank at
// T = 16,384 prepares 767 MiB against a case of 1.14 GB; the EP-1 layer 4,096 MiB against
// 5.4 GB: the trace's `prepare h1` phases on the H200 host.)
func preparedBudget(c *moe.Case) float64 { return 8 * float64(c.Elements()) }

// Prepare starts the case-only work of a check of case c on its own goroutines and returns
// at once: the validation and plan, and — for a case judged stage-locally in full — stage
// h1's enclosure from the gathered X, within a memory budget of the case's own size
// (preparedBudget). Start it before the backend's run and pass it to the check as
// Options.Prepared; opts are the options the check will get (Prepare reads Contract, Stop,
// Trace, SkipStages, Sample). The check waits for the work and uses it where it is exactly
// what it would compute; its verdict is the same with or without it.
//
// Prepare returns nil — nothing to prepare, no goroutine — for a case whose GEMM 1 is below
// 2^30 multiply-adds (prepareMinWork: the generator's cases all are), for SkipStages and for
// a sampled check (which derive the enclosures they need themselves).
//
// The work uses only this Checker's scratch pool, which is safe for concurrent use: the
// Checker may check other cases meanwhile. It stops when opts.Stop or Close is closed.
func (k *Checker) Prepare(c *moe.Case, opts Options) *Prepared {
	if c == nil || opts.SkipStages || opts.Sample.On() || !k.prepareAll && !(prepareWork(c) >= prepareMinWork) {
		return nil
	}
	pr := &Prepared{c: c, ct: opts.Contract, quit: make(chan struct{}), done: make(chan struct{})}
	sp := k.sp
	if sp.Workers == 0 {
		sp = par.New(0, 0)
	}
	tl := phase.New(opts.Trace, "trace: oracle ")
	go pr.work(sp, k.taskSize(), &k.pool, tl)
	if opts.Stop != nil {
		go func() { // the caller's stop stops the work too; returns when the work has
			select {
			case <-opts.Stop:
				pr.stop()
			case <-pr.done:
			}
		}()
	}
	return pr
}

// Close stops the work if it is still running and waits until it has returned, then drops
// what it holds. Safe on nil and more than once; not concurrently with a Check it was given
// to.
func (pr *Prepared) Close() {
	if pr == nil {
		return
	}
	pr.stop()
	<-pr.done
	pr.h1 = nil
}

func (pr *Prepared) stop() { pr.once.Do(func() { close(pr.quit) }) }

// wait waits until the work has returned, or stop is closed (then false).
func (pr *Prepared) wait(stop <-chan struct{}) bool {
	select {
	case <-pr.done:
		return true
	case <-stop:
		return false
	}
}

// work is the prepared work: validation, plan, and stage h1's enclosure.
func (pr *Prepared) work(sp par.Split, ts taskSize, pool *scratchPool, tl *phase.Timeline) {
	defer close(pr.done)
	c := pr.c
	if stopped(pr.quit) {
		return
	}
	ph := tl.Start("prepare validate")
	pr.verr = c.Validate(moe.Limits{})
	ph.End()
	if pr.verr != nil {
		pr.complete = true
		return
	}
	if stopped(pr.quit) {
		return
	}
	ph = tl.Start("prepare plan")
	pr.plan, pr.perr = c.Plan()
	ph.End()
	pr.complete = true
	if pr.perr != nil {
		return
	}
	R := pr.plan.Rows
	if R == 0 {
		return // no row of this rank: GEMM 1 has nothing to compute
	}
	b := preparedBytes(R, c.H, c.I)
	if b > preparedBudget(c) {
		tl.Start(fmt.Sprintf("prepare h1 skipped (%.0f MiB over the budget of %.0f)", b/(1<<20), preparedBudget(c)/(1<<20))).End()
		return
	}
	ph = tl.Start(fmt.Sprintf("prepare h1 (%.0f MiB)", b/(1<<20)))
	pr.h1 = prepareH1(c, pr.plan, pr.ct, sp, ts, pool, pr.quit)
	ph.End()
}

// prepareH1 computes stage h1's enclosure on rows [0, R) from X gathered into xs, span by
// span of h1Spans with h1Span, in the check's tasks (gemmTasks with the check's task size
// ts: the check's own functions and parts, so the enclosure is bitwise the one the check
// derives from the same xs, in either GEMM build), split over sp's workers with scratch
// from pool. Nil when stop was closed before it finished.
func prepareH1(c *moe.Case, p *moe.Plan, ct contract.Contract, sp par.Split, ts taskSize, pool *scratchPool, stop <-chan struct{}) *preparedH1 {
	s := pool.get()
	defer pool.put(s)
	s.ar.reset()
	en := newEnclIn(c, p, &s.ar, &s.ws, pool)
	en.sp, en.stop, en.ct = sp, stop, ct
	R, H, n := en.R, en.H, 2*en.I
	out := &preparedH1{R: R, H: H, n: n, xs: hugemem.Float32s(R * H), enc: ivec{c: hugemem.Float64s(R * n), r: hugemem.Float64s(R * n)}}
	// xs as the path stores it (docs/path.md: xs[i] = x[tok(i)], rows < R).
	en.forRows(R, H, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			t := en.tok[i]
			for h, x := range c.X[t*H : (t+1)*H] {
				out.xs[i*H+h] = float32(x)
			}
		}
	})
	spans, ops := en.gemmTasks(nil, en.h1Spans(nil), moe.TensorH1, n, ts)
	en.ops = ops
	en.forSpans(len(spans), R*n*H, func(x *encl, k int) {
		s := spans[k]
		if s.e < 0 || s.rows != nil {
			return // the tail: not held (the check's tail rule or gemmSpan's zeros)
		}
		v := x.h1Span(s, ptsrc(out.xs))
		copy(out.enc.c[s.lo*n:s.hi*n], v.c)
		copy(out.enc.r[s.lo*n:s.hi*n], v.r)
	})
	if stopped(stop) {
		return nil
	}
	return out
}

// span returns the prepared enclosure of stage h1 on span s when the path's xs rows of s are
// the operand it was computed from (sameOperand), else false. Nil holds nothing.
func (p *preparedH1) span(s span, xs []float32) (ivec, bool) {
	if p == nil || s.rows != nil || s.e < 0 || s.hi > p.R || s.lo >= s.hi {
		return ivec{}, false
	}
	if !sameOperand(xs[s.lo*p.H:s.hi*p.H], p.xs[s.lo*p.H:s.hi*p.H]) {
		return ivec{}, false
	}
	return subIvec(p.enc, s.lo*p.n, (s.hi-s.lo)*p.n), true
}

// sameOperand reports whether a and b make the same GEMM operand: rowsrc's point
// enclosures, which are the float32 value exactly when it is finite and one unknown for
// every NaN and ±Inf. So each pair of elements must have the same bits (−0 is not +0: the
// sign of an exact zero sum can follow it) or both be non-finite.
func sameOperand(a, b []float32) bool {
	const exp = 0x7f800000
	for i, x := range a {
		u, v := math.Float32bits(x), math.Float32bits(b[i])
		if u != v && (u&exp != exp || v&exp != exp) {
			return false
		}
	}
	return true
}

// takePrepared is opts.Prepared for a check of case c, waited for: nil when there is none, or
// when the check was stopped while it waited or the work was stopped before its validation
// and plan (the check then does without); an error when it was prepared for another case or
// under other freedoms.
func takePrepared(c *moe.Case, opts Options, tl *phase.Timeline) (*Prepared, error) {
	pr := opts.Prepared
	if pr == nil {
		return nil, nil
	}
	if pr.c != c {
		return nil, fmt.Errorf("oracle: the prepared work (Options.Prepared) belongs to another case")
	}
	if !sameFreedoms(pr.ct, opts.Contract) {
		return nil, fmt.Errorf("oracle: the prepared work was derived under contract %s, the check asks for %s", pr.ct, opts.Contract)
	}
	ph := tl.Start("prepared wait")
	ok := pr.wait(opts.Stop)
	ph.End()
	if !ok || !pr.complete {
		return nil, nil
	}
	return pr, nil
}
