package oracle

import (
	"errors"
	"fmt"
	"github.com/moecheck/moecheck/internal/poison"
	"io"
	"math"
	"sync/atomic"
	"time"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/internal/phase"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// Options tune Check. The zero value runs every check with the stage-local checks on when
// the result carries stages.
type Options struct {
	// SkipStages turns off the stage-local checks even when the result carries stages.
	SkipStages bool
	// Enclosure, when non-nil, is a precomputed Enclose(c) (reused across poison policies of
	// one case); it must belong to the same case.
	Enclosure *Enclosure
	// Context computes the float64 reference and fills each output's RelFro and CalcDiff
	// even when the result passes (on failure they are always filled).
	Context bool
	// Reference, when non-nil, is a precomputed reference.Run(c) used for the context.
	Reference *reference.Result
	// Contract is the path contract the result is judged under (package contract): its
	// rounding freedoms widen the enclosures to every value a conforming path may store. The
	// zero value is the exact contract (docs/path.md as written). A precomputed Enclosure
	// must have been derived under the same contract.
	Contract contract.Contract
	// Stop, when closed, stops the check at its next expert or range of rows: Check then
	// returns an error wrapping ErrStopped (a real layer's check takes seconds to minutes;
	// callers pass a context's Done channel). Nil never stops.
	Stop <-chan struct{}
	// ContextWork bounds the float64 reference a failing verdict gets without being asked
	// (Context false, no Reference): its six GEMMs over the case's local rows R, 18·R·H·I
	// multiply-adds. Above it the verdict leaves the context (each output's RelFro and
	// CalcDiff) out and says why (Verdict.ContextSkipped): at a real layer's size the
	// reference costs more than the check — a failing DeepSeek-V3 EP-32 rank at T = 16,384
	// spent 89 s in it after a 6.7 s sampled check (README, "Sampled check"). 0 means
	// DefaultContextWork; negative, no bound.
	ContextWork int64
	// Trace, when non-nil, receives a timeline of the check's phases (each stage's
	// comparison, the weight gradients, the context): wall time, CPU time and the cores kept
	// busy (package internal/phase; the CLI's MOECHECK_TRACE). Nil writes nothing.
	Trace io.Writer
	// Sample, when on (0 < Fraction < 1), judges a seeded random subset of the stage-local
	// checks' rows, tokens and weight-gradient rows, each with the full check's enclosure
	// (sample.go; docs/oracle.md §10); Verdict.Sample then says what was judged. It applies
	// to results judged stage-locally; a result judged end to end is judged whole. The zero
	// value checks everything.
	Sample Sample
	// Derive, when set, names a run the oracle judged in full and passed (Checker.CheckJudged)
	// whose case is this case with its tokens permuted: a full stage-local check then takes
	// each stage-local comparison whose every read value it finds bitwise equal to the
	// judged run's mapped values from that run's judgement, which is provably the same
	// (derive.go; docs/oracle.md §11), and judges the others. The verdict is the full
	// check's. Ignored by a sampled check and by a check end to end. Nil judges everything.
	Derive *Derivation
	// Prepared, when non-nil, is the case-only work of this check started ahead
	// (Checker.Prepare, typically while the backend runs the case): the check waits for it,
	// then takes the validation, the plan and stage h1's enclosure from it wherever they are
	// exactly what it would compute itself (prepare.go), so the verdict is the one it gives
	// without. It must be prepared for this case (the same *moe.Case, unchanged since) under
	// the same contract's freedoms. A sampled check and a check end to end use only its
	// validation and plan; a check stopped while it waits does without it. One check takes it;
	// the caller still closes it.
	Prepared *Prepared
}

// DefaultContextWork is Options.ContextWork's default: 2^38 multiply-adds (seconds on one
// core with OpenBLAS). The Qwen3-30B-A3B EP-8 rank at T = 4,096 (1.2·10^11) gets its context;
// at T = 16,384 (4.7·10^11) it does not.
const DefaultContextWork = 1 << 38

// contextWork is 18·R·H·I for the local rows R of plan p: the multiply-adds of the float64
// reference's six GEMMs.
func contextWork(c *moe.Case, p *moe.Plan) float64 {
	r := 0.0
	for _, n := range p.Counts {
		r += float64(n)
	}
	return 18 * r * float64(c.H) * float64(c.I)
}

// ErrStopped is the error of a check stopped through Options.Stop.
var ErrStopped = errors.New("check stopped")

// Check judges a backend's result for case c. It returns an error only when c itself is
// invalid; every mismatch is reported in the verdict.
//
// With stages (and not SkipStages), the outputs are checked stage-locally only: a path whose
// every stage lies in its stage-local enclosure is a conforming path, so its outputs lie in
// the end-to-end enclosure too, and computing that one as well would only double the cost.
// Without stages (a black-box backend) the outputs are checked end to end.
func Check(c *moe.Case, got *gpu.Result, opts Options) (*Verdict, error) {
	return new(Checker).Check(c, got, opts)
}

// Checker is a reusable oracle: it keeps its scratch memory between cases, which makes
// checking many small cases several times faster than the package-level Check. The zero
// value is ready to use; a Checker must not be used by two goroutines at once.
type Checker struct {
	ar   arena
	ws   workspace
	pool scratchPool // the expert workers' scratch (parallel.go)
	sb   streamBufs  // the streaming checks' bookkeeping (stream.go)
	// split is the split comparison's scratch (Checker.CompareSplitSumUnder)
	split splitScratch
	// sp, when set, splits the check's loops (tests); the zero value splits over every core.
	sp par.Split
	// fullTails derives every span of the sentinel tail element by element (tests: the
	// stage checks' shortcut for tail rows, compareSpansTail, must give the same verdict).
	fullTails bool
	// tailHits counts the tail spans the shortcut judged (tests: it must be taken).
	tailHits atomic.Int64
	// wholeLocal compares the stage-local y and dX against their whole enclosure (tests:
	// the span by span comparison must give the same verdict).
	wholeLocal bool
	// derivedHits counts the comparisons a check took from a judged run (tests: the
	// derivation must be taken).
	derivedHits atomic.Int64
	// prepareAll makes Prepare prepare a case of any size (tests: small cases exercise it);
	// preparedHits counts the h1 spans a check took from a Prepared (tests: it must be taken).
	prepareAll   bool
	preparedHits atomic.Int64
	// wholeExperts gives every expert of a GEMM stage and weight gradient one task, run in
	// span order, as before they were split into parts and ordered (tests and benchmarks:
	// the parts must not change a verdict in the default build; the figures of
	// parallel.go's tasks).
	wholeExperts bool
	// partSize, when its work is positive, replaces defaultTasks (tests: small cases split
	// into parts).
	partSize taskSize
	// taskLog, when set, receives every task of the stage-local checks' span comparisons
	// with its duration (benchmarks: the makespan of a stage on more cores than the
	// machine has, tasktime_test.go).
	taskLog func(t moe.Tensor, s span, d time.Duration)
	// taskClock, when set, is the clock taskLog's durations are read from (benchmarks:
	// the thread's CPU time); nil: the wall clock.
	taskClock func() time.Duration
}

// Check is the package-level Check with this Checker's scratch memory.
func (k *Checker) Check(c *moe.Case, got *gpu.Result, opts Options) (*Verdict, error) {
	k.ar.reset()
	tl := phase.New(opts.Trace, "trace: oracle ")
	pr, err := takePrepared(c, opts, tl)
	if err != nil {
		return nil, err
	}
	var p *moe.Plan
	if pr != nil {
		err, p = pr.verr, pr.plan
		if err == nil {
			err = pr.perr
		}
	} else {
		ph := tl.Start("validate")
		err = c.Validate(moe.Limits{})
		ph.End()
		if err == nil {
			ph = tl.Start("plan")
			p, err = c.Plan()
			ph.End()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	if err := opts.Sample.Validate(); err != nil {
		return nil, err
	}
	if opts.Derive != nil {
		if err := validPerm(opts.Derive.Perm, c.T); err != nil {
			return nil, err
		}
	}
	ck := &checker{c: c, p: p, v: &Verdict{Contract: opts.Contract.String()}, ar: &k.ar, ws: &k.ws, pool: &k.pool, sp: k.sp, stop: opts.Stop, sb: &k.sb, ct: opts.Contract, tl: tl, fullTails: k.fullTails, tailHits: &k.tailHits, wholeLocal: k.wholeLocal, derivedHits: &k.derivedHits, preparedHits: &k.preparedHits,
		wholeExperts: k.wholeExperts, partSize: k.partSize, taskLog: k.taskLog, taskClock: k.taskClock}
	local := got != nil && got.Stages != nil && !opts.SkipStages
	if local && opts.Sample.On() {
		ck.sm = &sampler{s: opts.Sample, r: SampleReport{Fraction: opts.Sample.Fraction, Seed: opts.Sample.Seed}}
	}
	if local && ck.sm == nil {
		ck.derive = opts.Derive // taken up once the stages' plan and shapes are checked (stages.go)
		if pr != nil {
			ck.pre = pr.h1 // the check owns it now; released after stage h1 (stages.go)
		}
	}
	if pr != nil {
		pr.h1 = nil
	}
	en := opts.Enclosure
	if en == nil && !local {
		sp := ck.tl.Start("enclose")
		en, err = encloseStop(c, false, opts.Contract, ck.split(), opts.Stop)
		sp.End()
		if err != nil {
			return nil, err
		}
	}
	if got == nil {
		ck.fail(Failure{Check: CheckShape, Tensor: moe.TensorCase, Count: 1, Detail: "backend returned no result"})
		return ck.finish(), nil
	}
	bias := c.Bias
	if opts.Enclosure != nil && !sameFreedoms(opts.Enclosure.Contract, opts.Contract) {
		return nil, fmt.Errorf("oracle: the precomputed enclosure was derived under contract %s, the check asks for %s", opts.Enclosure.Contract, opts.Contract)
	}
	if en == nil {
		en = &Enclosure{} // stage-local mode: outputs are compared in stages()
	}
	outs := ck.tl.Start("outputs")
	for _, t := range []moe.Tensor{moe.TensorY, moe.TensorDX, moe.TensorDW1, moe.TensorDW2, moe.TensorDB1, moe.TensorDB2, moe.TensorDRW} {
		if t.Bias() && !bias {
			continue
		}
		g, want := got.Tensor(t), c.Len(t)
		if len(g) != want {
			ck.fail(Failure{Check: CheckShape, Tensor: t, Count: 1, Detail: fmt.Sprintf("length %d, want %d", len(g), want)})
			continue
		}
		ck.contracts(t, g)
		if !local {
			ck.compare(t, g, en.tensor(t), true)
		} else {
			ck.signatures(t, g)
		}
	}
	outs.End()
	if local {
		ck.stages(got)
	}
	if stopped(opts.Stop) {
		return nil, fmt.Errorf("oracle: %w", ErrStopped)
	}
	v := ck.finish()
	limit := opts.ContextWork
	if limit == 0 {
		limit = DefaultContextWork
	}
	if !v.Pass && !opts.Context && opts.Reference == nil && limit > 0 {
		if w := contextWork(c, p); w > float64(limit) {
			v.ContextSkipped = fmt.Sprintf("the float64 reference's %.3g multiply-adds are over the bound of %.3g (oracle.Options.ContextWork): rel-fro and calc_diff not computed", w, float64(limit))
		}
	}
	if (!v.Pass && v.ContextSkipped == "") || opts.Context || opts.Reference != nil {
		ref := opts.Reference
		sp := ck.tl.Start("context")
		if ref == nil {
			var err error
			if ref, err = reference.Run(c, reference.Options{}); err != nil {
				return nil, err
			}
		}
		addContext(v, c, got, ref)
		sp.End()
	}
	return v, nil
}

// CaseErrorVerdict is the verdict of a case the backend could not finish.
func CaseErrorVerdict(ce *gpu.CaseError) *Verdict {
	return &Verdict{CaseError: ce, Failures: []Failure{{Check: CheckCaseError, Tensor: moe.TensorCase, Count: 1, Detail: ce.Error()}}}
}

type checker struct {
	ct   contract.Contract
	ar   *arena
	ws   *workspace
	pool *scratchPool
	sp   par.Split // zero: every core
	stop <-chan struct{}
	sb   *streamBufs
	c    *moe.Case
	p    *moe.Plan
	v    *Verdict
	st   map[statKey]int // index of a tensor's stat in v.Stats
	tl   *phase.Timeline // nil: no trace
	// fullTails: see Checker.fullTails
	fullTails bool
	tailHits  *atomic.Int64 // Checker.tailHits
	// wholeLocal: see Checker.wholeLocal
	wholeLocal bool
	// wholeExperts, partSize, taskLog, taskClock: see Checker's
	wholeExperts bool
	partSize     taskSize
	taskLog      func(t moe.Tensor, s span, d time.Duration)
	taskClock    func() time.Duration
	// sm, when set, samples the stage-local checks (sample.go); nil: the full check
	sm *sampler
	// derive is Options.Derive of a full stage-local check; dv, the comparisons taken from
	// its judged run (derive.go), set once the stages' plan and shapes are checked
	derive      *Derivation
	dv          derivedStats
	derivedHits *atomic.Int64 // Checker.derivedHits
	// pre is stage h1's prepared enclosure (Options.Prepared) of a full stage-local check,
	// nil once stage h1 is compared; preparedHits counts the spans taken from it
	pre          *preparedH1
	preparedHits *atomic.Int64 // Checker.preparedHits
}

// phase starts the timeline's phase named prefix + t; nothing (and no name built) without
// a timeline, so that a small case's check allocates nothing for it.
func (ck *checker) phase(prefix string, t moe.Tensor) phase.Span {
	if ck.tl == nil {
		return phase.Span{}
	}
	return ck.tl.Start(prefix + t.String())
}

// split is the checker's loop split: its own, else every core.
func (ck *checker) split() par.Split {
	if ck.sp.Workers == 0 {
		return par.New(0, 0)
	}
	return ck.sp
}

func (ck *checker) finish() *Verdict {
	ck.v.Pass = len(ck.v.Failures) == 0 && ck.v.CaseError == nil
	if ck.sm != nil && ck.v.Sample == nil {
		r := ck.sm.r
		ck.v.Sample = &r
		for _, t := range r.Tensors {
			if i, ok := ck.st[statKey{t.Tensor, t.Local}]; ok {
				ck.v.Stats[i].Judged = t.JudgedElements
			}
		}
	}
	return ck.v
}

func (ck *checker) fail(f Failure) { ck.v.Failures = append(ck.v.Failures, f) }

// statKey identifies a stat: a tensor, compared end to end or stage-locally.
type statKey struct {
	t     moe.Tensor
	local bool
}

func (ck *checker) stat(t moe.Tensor, local bool, n int) *TensorStat {
	if ck.st == nil {
		ck.st = map[statKey]int{}
	}
	k := statKey{t, local}
	if i, ok := ck.st[k]; ok {
		return &ck.v.Stats[i]
	}
	ck.v.Stats = append(ck.v.Stats, TensorStat{Tensor: t, Local: local, N: n, RelFro: math.NaN(), CalcDiff: math.NaN()})
	ck.st[k] = len(ck.v.Stats) - 1
	return &ck.v.Stats[len(ck.v.Stats)-1]
}

// agg accumulates the failures of one (check, tensor) pair, keeping the worst.
type agg struct {
	f   Failure
	set bool
}

func (a *agg) add(f Failure) {
	if !a.set {
		a.f, a.set = f, true
		a.f.Count = 1
		return
	}
	a.f.Count++
	if better(f, a.f) {
		n := a.f.Count
		a.f = f
		a.f.Count = n
	}
}

// compare checks got against an enclosure. outputs: whether this is a result tensor (then
// a signature NaN anywhere is a failure) or a stage (signatures only where constrained).
func (ck *checker) compare(name moe.Tensor, got []float32, enc ivec, output bool) {
	ck.compareLoc(name, false, got, enc, output)
}

// compareLocal compares a result tensor against a stage-local enclosure (Failure.Local).
func (ck *checker) compareLocal(name moe.Tensor, got []float32, enc ivec) {
	ck.compareLoc(name, true, got, enc, false)
}

func (ck *checker) compareLoc(name moe.Tensor, local bool, got []float32, enc ivec, output bool) {
	base := name
	st := ck.stat(name, local, len(got))
	aggs := map[string]*agg{}
	add := func(check string, f Failure) {
		a := aggs[check]
		if a == nil {
			a = &agg{}
			aggs[check] = a
		}
		a.add(f)
	}
	// The statistics of every element, split over the cores in chunks; the failures, which
	// must be aggregated in index order (agg keeps the first of equally bad ones), are
	// collected afterwards, serially, from the chunks that have any.
	parts := ck.compareStats(got, enc, output, st)
	for ch, bad := range parts {
		if !bad {
			continue
		}
		for i := ch * compareChunk; i < min((ch+1)*compareChunk, len(got)); i++ {
			g32 := got[i]
			g := float64(g32)
			buf, sig := poison.Of(g32)
			// A case with NaN data may carry any payload, signature look-alikes included: a
			// signature proves a leak only when the data has no NaN of its own.
			sig = sig && !ck.c.NonFinite
			if !enc.known(i) {
				if sig && output {
					loc := ck.locate(base, i)
					loc.Buffer = buf
					add(CheckSignature, Failure{Check: CheckSignature, Tensor: name, Local: local, Worst: loc, Got: g, Want: math.NaN(), Bound: math.NaN(), Ratio: math.Inf(1),
						Detail: "poison of buffer " + buf.String() + " reached this tensor: that buffer was read where it was never written"})
					st.Failed++
				}
				continue
			}
			c, r := enc.c[i], enc.r[i]
			if math.IsNaN(g) || math.IsInf(g, 0) {
				loc := ck.locate(base, i)
				check := CheckNonFinite
				detail := "non-finite value where the reference is finite"
				if sig {
					check = CheckSignature
					loc.Buffer = buf
					detail = "poison of buffer " + buf.String() + " reached this tensor: that buffer was read where it was never written"
				}
				add(check, Failure{Check: check, Tensor: name, Local: local, Worst: loc, Got: g, Want: c, Bound: r, Ratio: math.Inf(1), Detail: detail})
				st.Failed++
				continue
			}
			q := ratio(g, c, r)
			if q <= 1 {
				continue // counted by compareStats
			}
			st.Failed++
			check := CheckBound
			if !output {
				check = CheckStage
			}
			add(check, Failure{Check: check, Tensor: name, Local: local, Worst: ck.locate(base, i), Got: g, Want: c, Bound: r, Ratio: q})
		}
	}
	for _, check := range []string{CheckSignature, CheckNonFinite, CheckBound, CheckStage} {
		if a := aggs[check]; a != nil {
			ck.fail(a.f)
		}
	}
}

// statPart is one chunk's share of compareStats' statistics.
type statPart struct {
	unknown, exact int
	maxRatio       float64
}

// compareChunk is the element count of compareStats' chunks.
const compareChunk = 1 << 14

// compareStats adds to st the unknown and exact element counts and the largest informative
// ratio of got against enc (compareLoc's statistics; order-free: sums and a maximum), split
// over the cores, and reports per chunk of compareChunk elements whether it holds an
// element that fails (compareLoc then reports those in order).
func (ck *checker) compareStats(got []float32, enc ivec, output bool, st *TensorStat) []bool {
	n := (len(got) + compareChunk - 1) / compareChunk
	parts, bad := grow(&ck.sb.cparts, n), grow(&ck.sb.bad, n)
	d, nonFinite := ck.c.DType, ck.c.NonFinite
	body := func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			p := &parts[ch]
			for i := ch * compareChunk; i < min((ch+1)*compareChunk, len(got)); i++ {
				g32 := got[i]
				g := float64(g32)
				if !enc.known(i) {
					p.unknown++
					if _, sig := poison.Of(g32); sig && !nonFinite && output {
						bad[ch] = true
					}
					continue
				}
				c, r := enc.c[i], enc.r[i]
				if r == 0 {
					p.exact++
				}
				if math.IsNaN(g) || math.IsInf(g, 0) {
					bad[ch] = true
					continue
				}
				q := ratio(g, c, r)
				if q <= 1 {
					// The ratio is informative only where the enclosure spans more than 8
					// dtype values; in a narrower one rounding puts legitimate values at
					// the endpoints.
					if q > p.maxRatio && r > 4*d.Ulp(c) {
						p.maxRatio = q
					}
					continue
				}
				bad[ch] = true
			}
		}
	}
	sp := ck.split()
	if sp.Workers > 1 && len(got) >= 2*sp.MinWork {
		par.For(sp, n, 8*compareChunk, body, func(f func(int, int), lo, hi int) { f(lo, hi) })
	} else {
		body(0, n)
	}
	for _, p := range parts {
		st.Unknown += p.unknown
		st.Exact += p.exact
		if p.maxRatio > st.MaxRatio {
			st.MaxRatio = p.maxRatio
		}
	}
	return bad
}

// signatures reports surviving signature NaNs in an output (in stage-local mode, where the
// output is otherwise compared against its stage-local enclosure).
func (ck *checker) signatures(name moe.Tensor, got []float32) {
	if ck.c.NonFinite {
		return // data NaNs may carry signature look-alike payloads (see compareLoc)
	}
	if len(got) >= sigScanMin && !ck.anyQuietNaN(got) {
		return // every signature is a quiet NaN: the loop below would find none
	}
	var a agg
	for i, g := range got {
		if b, ok := poison.Of(g); ok {
			loc := ck.locate(name, i)
			loc.Buffer = b
			a.add(Failure{Check: CheckSignature, Tensor: name, Worst: loc, Got: float64(g), Want: math.NaN(), Bound: math.NaN(), Ratio: math.Inf(1),
				Detail: "poison of buffer " + b.String() + " reached this tensor: that buffer was read where it was never written"})
		}
	}
	if a.set {
		ck.stat(name, false, len(got)).Failed += a.f.Count
		ck.fail(a.f)
	}
}

// sigScanMin is the output length from which signatures first looks for a quiet NaN over the
// cores (a real layer's outputs: 10^7 to 10^8 values, a serial scan of a second at T 16384).
const sigScanMin = 1 << 20

// anyQuietNaN reports whether some value of v is a quiet NaN (exponent all ones, the top
// mantissa bit set: every poison signature is one), scanning over the cores.
func (ck *checker) anyQuietNaN(v []float32) bool {
	var found atomic.Bool
	par.For(ck.split(), len(v), 1, v, func(v []float32, lo, hi int) {
		if found.Load() {
			return
		}
		for _, x := range v[lo:hi] {
			if math.Float32bits(x)&0x7FC00000 == 0x7FC00000 {
				found.Store(true)
				return
			}
		}
	})
	return found.Load()
}

// contracts asserts the exact zeros of docs/path.md directly (independently of the
// enclosure), so a broken contract is reported under its own name. Skipped for cases with
// non-finite data, where 0·Inf may legitimately give NaN.
func (ck *checker) contracts(name moe.Tensor, got []float32) {
	c, p := ck.c, ck.p
	if c.NonFinite {
		return
	}
	var a agg
	zero := func(i int, chk string) {
		if got[i] != 0 {
			g := float64(got[i])
			loc := ck.locate(name, i)
			if b, ok := poison.Of(got[i]); ok {
				loc.Buffer = b
			}
			a.add(Failure{Check: chk, Tensor: name, Worst: loc, Got: g, Want: 0, Bound: 0, Ratio: ratio(g, 0, 0)})
		}
	}
	switch name {
	case moe.TensorY:
		for t := 0; t < c.T; t++ {
			all := true
			for k := 0; k < c.K; k++ {
				if c.Routing.IDs[t*c.K+k] != int32(c.E) {
					all = false
					break
				}
			}
			if all {
				for h := 0; h < c.H; h++ {
					zero(t*c.H+h, CheckSentinelOut)
				}
			}
		}
	case moe.TensorDRW:
		for s, id := range c.Routing.IDs {
			if id == int32(c.E) {
				zero(s, CheckSentinelDRW)
			}
		}
	case moe.TensorDW1, moe.TensorDW2, moe.TensorDB1, moe.TensorDB2:
		for e := 0; e < c.E; e++ {
			if p.Counts[e] != 0 {
				continue
			}
			switch name {
			case moe.TensorDW1:
				for j := 0; j < 2*c.I; j++ {
					for h := 0; h < c.H; h++ {
						zero(c.W1Index(e, j, h), CheckEmptyWgrad)
					}
				}
			case moe.TensorDW2:
				for h := 0; h < c.H; h++ {
					for j := 0; j < c.I; j++ {
						zero(c.W2Index(e, h, j), CheckEmptyWgrad)
					}
				}
			case moe.TensorDB1:
				if e < c.E-1 || p.Rows == c.S() {
					for j := 0; j < 2*c.I; j++ {
						zero(e*2*c.I+j, CheckEmptyWgrad)
					}
				}
			case moe.TensorDB2:
				if e < c.E-1 || p.Rows == c.S() {
					for h := 0; h < c.H; h++ {
						zero(e*c.H+h, CheckEmptyWgrad)
					}
				}
			}
		}
	}
	if a.set {
		a.f.Detail = "exact contract (docs/path.md): must be 0"
		ck.fail(a.f)
	}
}

// locate describes element i of a named tensor.
func (ck *checker) locate(name moe.Tensor, i int) Location {
	c, p := ck.c, ck.p
	l := Location{Tensor: name, Index: i, Token: -1, Slot: -1, Expert: -1, SortedRow: -1, Row: -1, Col: -1}
	rowOf := func(row int) { // a sorted row
		l.SortedRow = row
		if row < len(p.Perm) {
			s := int(p.Perm[row])
			l.Token, l.Slot, l.Expert = s/c.K, s%c.K, int(p.Sorted[row])
			l.Sentinel = row >= p.Rows
		}
	}
	switch name {
	case moe.TensorY, moe.TensorDX:
		l.Token, l.Col = i/c.H, i%c.H
		for k := 0; k < c.K && l.Token < c.T; k++ {
			s := l.Token*c.K + k
			if s >= len(p.Inv) || s >= len(c.Routing.IDs) {
				break
			}
			id := int(c.Routing.IDs[s])
			l.Feeds = append(l.Feeds, Feed{Slot: k, Expert: id, SortedRow: int(p.Inv[s]), Sentinel: id == c.E})
		}
	case moe.TensorDRW:
		l.Token, l.Slot = i/c.K, i%c.K
		l.Expert = int(c.Routing.IDs[i])
		l.SortedRow = int(p.Inv[i])
		l.Sentinel = l.Expert == c.E
	case moe.TensorDW1:
		per := 2 * c.I * c.H
		l.Expert = i / per
		r := i % per
		if c.Layout == moe.Transposed {
			l.Row, l.Col = r%(2*c.I), r/(2*c.I)
		} else {
			l.Row, l.Col = r/c.H, r%c.H
		}
	case moe.TensorDW2:
		per := c.H * c.I
		l.Expert = i / per
		r := i % per
		if c.Layout == moe.Transposed {
			l.Row, l.Col = r%c.H, r/c.H
		} else {
			l.Row, l.Col = r/c.I, r%c.I
		}
	case moe.TensorDB1:
		l.Expert, l.Col = i/(2*c.I), i%(2*c.I)
	case moe.TensorDB2:
		l.Expert, l.Col = i/c.H, i%c.H
	case moe.TensorXs, moe.TensorH2, moe.TensorO, moe.TensorDO, moe.TensorDH2, moe.TensorDXs:
		rowOf(i / c.H)
		l.Col = i % c.H
	case moe.TensorH1, moe.TensorDH1:
		rowOf(i / (2 * c.I))
		l.Col = i % (2 * c.I)
	case moe.TensorAct, moe.TensorDAct:
		rowOf(i / c.I)
		l.Col = i % c.I
	case moe.TensorDRWSorted:
		rowOf(i)
	}
	return l
}

func f32to64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// sameFreedoms reports whether two contracts admit the same values (names and promises aside).
func sameFreedoms(a, b contract.Contract) bool {
	a.Name, b.Name = "", ""
	a.Promises, b.Promises = contract.Promises{}, contract.Promises{}
	return a == b
}
