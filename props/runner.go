package props

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"time"

	"github.com/leanovate/gopter"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/interrupt"
)

// RunConfig configures Run. The zero value of every field but Env is valid: all properties,
// default generator options, seed 0, 100 cases, no shard, shrinking on, stop at the first
// failure.
type RunConfig struct {
	Env        *Env
	Properties []Property // default All()
	Gen        GenOptions // case generator bounds
	Seed       uint64     // case i is generated from (Seed, i): identical streams on every machine
	Cases      int        // number of case indices to visit (0: 100, unless Duration is set)
	Duration   time.Duration
	Start      int // first case index (for --resume)
	Shard      int // this shard, in [0, Shards)
	Shards     int // 0 or 1: no sharding; case i runs on shard i mod Shards
	NoShrink   bool
	MaxShrinks int  // shrink steps that may be tried (default 400)
	KeepGoing  bool // continue after a failure (nightly); default stop at the first
	// OnCase is called after every case this shard runs, in case order, from the goroutine
	// that called Run (never concurrently), whatever Jobs is.
	OnCase func(CaseResult)
	// Jobs is the number of cases run at once (0 or 1: one at a time, on Env). With Jobs > 1
	// job 0 runs on Env and job k on NewEnv(k); each job runs whole cases, shrinking
	// included, and results are committed in case order, so the Report, the OnCase calls
	// and Next are the same whatever Jobs is (with Duration, how many cases fit differs).
	// Without KeepGoing the lowest failing index wins and later cases are dropped.
	Jobs int
	// NewEnv returns job k's environment (k in [1, Jobs)): its own backend instance and
	// oracle scratch memory. Required when Jobs > 1; the caller owns (closes) the backends.
	NewEnv func(job int) (*Env, error)
}

// CaseResult is the outcome of one generated case.
type CaseResult struct {
	Index    int
	Spec     Spec
	Trial    Trial // the case, its poison policy, its origin (Spec)
	Pass     bool
	Outcomes []*Outcome // one per property that ran, in order; stops at the first failure
	Failed   *Outcome   // the first failing outcome, if any
	Shrunk   *Shrunk    // the shrunk failing case, if shrinking ran
	Elapsed  time.Duration
	// Unsupported, when set, says why the case is outside the backend's capabilities: it
	// was not checked (Pass is true, Outcomes empty) and is counted in Report.Unsupported.
	Unsupported string
	// Skipped lists the properties skipped because a run they need is unsupported (or, for
	// ep-split-sum, its derived layer is over its budget), with why.
	Skipped []Skip
}

// Skip is a property a trial skipped and why (a *gpu.UnsupportedError's reason).
type Skip struct{ Property, Reason string }

// Shrunk is a minimized failing case.
type Shrunk struct {
	Spec    Spec
	Trial   Trial // the shrunk spec's trial (zero when shrinking did not reproduce the failure)
	Outcome *Outcome
	Steps   int           // successful shrink steps
	Tries   int           // candidates tried
	Elapsed time.Duration // time spent shrinking
}

// Report summarizes a Run.
type Report struct {
	Cases    int // cases run by this shard
	Failures []CaseResult
	Elapsed  time.Duration
	Next     int // the next case index not visited (for resuming)
	// Unsupported counts visited cases outside the backend's capabilities (not in Cases).
	Unsupported int
}

// SpecAt returns the spec of case index i for a seed: the same on every machine and shard.
func SpecAt(seed uint64, i int, o GenOptions) (Spec, gopter.Shrinker) {
	params := gopter.DefaultGenParameters()
	params.Rng = rand.New(rand.NewSource(int64(seed*0x9e3779b97f4a7c15) ^ int64(i)*0x5851f42d))
	r := GenSpec(o)(params)
	v, _ := r.Retrieve()
	return v.(Spec), r.Shrinker
}

// Run generates cases and checks every property on each, shrinking the first failure.
func Run(ctx context.Context, cfg RunConfig) (*Report, error) {
	if cfg.Env == nil || cfg.Env.Backend == nil {
		return nil, fmt.Errorf("props: Run needs a backend")
	}
	props := cfg.Properties
	if len(props) == 0 {
		props = allProperties
	}
	shards := cfg.Shards
	if shards <= 0 {
		shards = 1
	}
	if cfg.Shard < 0 || cfg.Shard >= shards {
		return nil, fmt.Errorf("props: shard %d outside [0, %d)", cfg.Shard, shards)
	}
	n := cfg.Cases
	if n == 0 && cfg.Duration == 0 {
		n = 100
	}
	if n < 0 {
		return nil, fmt.Errorf("props: %d cases: the count must be positive", n)
	}
	if cfg.Start < 0 || (n > 0 && cfg.Start > math.MaxInt-n) {
		return nil, fmt.Errorf("props: case indices from %d for %d cases leave [0, %d]", cfg.Start, n, math.MaxInt)
	}
	start := time.Now()
	rep := &Report{}
	i := cfg.Start
	// Next is the first index not finished, on every return: the case in flight when an
	// error or an interrupt ends the run is redone on resume.
	defer func() {
		rep.Next = i
		rep.Elapsed = time.Since(start)
	}()
	if cfg.Jobs > 1 {
		return rep, runJobs(ctx, cfg, props, shards, n, start, rep, &i)
	}
	for ; (n == 0 && i < math.MaxInt) || (n > 0 && i < cfg.Start+n); i++ {
		if cfg.Duration > 0 && time.Since(start) >= cfg.Duration {
			break
		}
		if err := ctx.Err(); err != nil {
			break
		}
		if i%shards != cfg.Shard {
			continue
		}
		co := runCase(ctx, cfg, cfg.Env, props, i, nil)
		if co.err != nil {
			return rep, co.err
		}
		if !commit(cfg, rep, co.cr) {
			i++
			break
		}
	}
	return rep, nil
}

// caseOutcome is what one case index produced: its result, or the error that ends the run.
type caseOutcome struct {
	cr  CaseResult
	err error
}

// runCase runs case index i on env: generate, fit, check every property, and shrink a
// failure unless shrink says not to (nil: always), before the shrink and before each of
// its candidates. An unsupported case is a result with Unsupported set.
func runCase(ctx context.Context, cfg RunConfig, env *Env, props []Property, i int, shrink func() bool) caseOutcome {
	spec, shrinker := SpecAt(cfg.Seed, i, cfg.Gen)
	spec, err := env.fit(spec)
	var cr CaseResult
	if err == nil {
		cr, err = RunSpec(ctx, env, props, spec)
	}
	if why, ok := unsupported(err); ok {
		return caseOutcome{cr: CaseResult{Index: i, Spec: spec, Pass: true, Unsupported: why}}
	}
	if err != nil {
		return caseOutcome{err: err}
	}
	cr.Index = i
	if !cr.Pass && !cfg.NoShrink && !timedOut(cr.Failed) && (shrink == nil || shrink()) { // a hang: reproducing it costs another timeout
		sh, err := shrinkFailure(ctx, env, cr.Failed.Property, spec, shrinker, cfg.MaxShrinks, shrink)
		if err != nil {
			return caseOutcome{err: err}
		}
		cr.Shrunk = sh
	}
	return caseOutcome{cr: cr}
}

// commit records one finished case in the report and hands it to OnCase; it returns false
// when the run stops here (a failure without KeepGoing).
func commit(cfg RunConfig, rep *Report, cr CaseResult) bool {
	if cr.Unsupported != "" {
		rep.Unsupported++
		if cfg.OnCase != nil {
			cfg.OnCase(cr)
		}
		return true
	}
	rep.Cases++
	if cfg.OnCase != nil {
		cfg.OnCase(cr)
	}
	if !cr.Pass {
		rep.Failures = append(rep.Failures, cr)
		return cfg.KeepGoing
	}
	return true
}

// RunSpec builds the spec's trial and checks the properties on it, stopping at the first
// failure.
func RunSpec(ctx context.Context, env *Env, props []Property, spec Spec) (CaseResult, error) {
	t0 := time.Now()
	t, err := SpecTrial(spec)
	if err != nil {
		return CaseResult{}, err
	}
	cr := CaseResult{Spec: spec, Trial: t, Pass: true}
	cr.Outcomes, cr.Failed, cr.Skipped, err = checkTrial(ctx, env, props, t)
	cr.Pass = cr.Failed == nil
	cr.Elapsed = time.Since(t0)
	return cr, err
}

// CheckTrial checks the properties that apply to t's case, stopping at the first failure
// (nil props: All).
//
// A property whose backend run is outside the backend's capabilities is skipped; when every
// property that applies was skipped, CheckTrial returns the *gpu.UnsupportedError.
func CheckTrial(ctx context.Context, env *Env, props []Property, t Trial) ([]*Outcome, *Outcome, error) {
	outs, failed, _, err := checkTrial(ctx, env, props, t)
	return outs, failed, err
}

// CheckTrialSkips is CheckTrial that also returns the properties it skipped (a run they
// need outside the backend's capabilities, or a derived case over a property's budget) and
// why.
func CheckTrialSkips(ctx context.Context, env *Env, props []Property, t Trial) (outs []*Outcome, failed *Outcome, skipped []Skip, err error) {
	return checkTrial(ctx, env, props, t)
}

func checkTrial(ctx context.Context, env *Env, props []Property, t Trial) ([]*Outcome, *Outcome, []Skip, error) {
	if len(props) == 0 {
		props = allProperties
	}
	defer env.end()
	if err := env.begin(t.Case, ctx.Done()); err != nil {
		return nil, nil, nil, err
	}
	var outs []*Outcome
	var skipped []Skip
	var unsup error
	for _, p := range props {
		if p.Applies != nil && !p.Applies(t.Case) {
			continue
		}
		o, err := interrupt.Do(ctx, func() (*Outcome, error) { return p.Check(ctx, env, t) })
		if why, ok := unsupported(err); ok {
			skipped = append(skipped, Skip{p.Name, why})
			if unsup == nil {
				unsup = err
			}
			continue
		}
		if err != nil {
			return outs, nil, skipped, err
		}
		outs = append(outs, o)
		if !o.Pass {
			return outs, o, skipped, nil
		}
	}
	if len(outs) == 0 && unsup != nil {
		return nil, nil, skipped, unsup
	}
	return outs, nil, skipped, nil
}

// ShrinkFailure greedily minimizes a spec on which the named property fails: it takes the
// first shrink candidate (gopter's per-field shrinkers: fewer tokens, experts, smaller H and
// I, simpler modes) that still fails, and repeats until none does or maxTries (default 400)
// candidates were tried.
func ShrinkFailure(ctx context.Context, env *Env, property string, spec Spec, shrinker gopter.Shrinker, maxTries int) (*Shrunk, error) {
	return shrinkFailure(ctx, env, property, spec, shrinker, maxTries, nil)
}

// shrinkFailure is ShrinkFailure that also stops, keeping what it has, once wanted (nil:
// always) says before a candidate that the shrink is no longer wanted: a run whose lower
// case failed after this shrink began ends before this case, which is dropped, shrunk or
// not. Unlike cancelling ctx, this lets the candidate in flight finish: cancelling a run
// kills a worker that other jobs' cases share.
func shrinkFailure(ctx context.Context, env *Env, property string, spec Spec, shrinker gopter.Shrinker, maxTries int, wanted func() bool) (*Shrunk, error) {
	p, err := ByName(property)
	if err != nil {
		return nil, err
	}
	if maxTries <= 0 {
		maxTries = 400
	}
	if p.Name == history.Name { // the history property shrinks its pair (history.go)
		return shrinkPair(ctx, env, spec, shrinker, maxTries, wanted)
	}
	t0 := time.Now()
	cur := &Shrunk{Spec: spec}
	defer func() { cur.Elapsed = time.Since(t0) }()
	// A hang costs a whole case timeout per try: after the first one, shrinking stops and
	// keeps what it has rather than waiting out a timeout for every candidate.
	timedOut := false
	fails := func(s Spec) (*Outcome, bool, error) {
		t, err := SpecTrial(s)
		if err != nil {
			return nil, false, nil
		}
		o, err := p.failsOn(ctx, env, t)
		if _, ok := unsupported(err); ok {
			return nil, false, nil // outside the capabilities: not a shrink step
		}
		if o != nil && o.Verdict != nil && o.Verdict.CaseError != nil && o.Verdict.CaseError.Kind == gpu.TimedOut {
			timedOut = true
		}
		return o, o != nil, err
	}
	o, ok, err := fails(spec)
	if err != nil || !ok {
		return cur, err // not reproducible in isolation (e.g. nondeterminism): keep the original
	}
	cur.Outcome = o
	cur.Trial, _ = SpecTrial(spec)
	for improved := true; improved && cur.Tries < maxTries && !timedOut; {
		improved = false
		next := shrinker(cur.Spec)
		for cand, more := next(); more && cur.Tries < maxTries && !timedOut; cand, more = next() {
			if ctx.Err() != nil || !stillWanted(wanted) {
				return cur, nil
			}
			s, ferr := env.fit(cand.(Spec))
			if ferr != nil || s == cur.Spec {
				continue // outside the capabilities, or fitted back onto the current spec
			}
			cur.Tries++
			o, ok, err := fails(s)
			if err != nil {
				return cur, err
			}
			if ok {
				cur.Spec, cur.Outcome = s, o
				cur.Trial, _ = SpecTrial(s)
				cur.Steps++
				improved = true
				break
			}
		}
	}
	return cur, nil
}

// failsOn runs the property on one trial and returns its outcome when it applies and fails,
// nil otherwise. Both shrinkers use it.
func (p Property) failsOn(ctx context.Context, env *Env, t Trial) (*Outcome, error) {
	if p.Applies != nil && !p.Applies(t.Case) {
		return nil, nil
	}
	defer env.end()
	if err := env.begin(t.Case, ctx.Done()); err != nil {
		return nil, err
	}
	o, err := interrupt.Do(ctx, func() (*Outcome, error) { return p.Check(ctx, env, t) })
	if err != nil || o.Pass {
		return nil, err
	}
	return o, nil
}

// timedOut reports whether a failing outcome is a case the backend did not finish in time.
func timedOut(o *Outcome) bool {
	return o != nil && o.Verdict != nil && o.Verdict.CaseError != nil && o.Verdict.CaseError.Kind == gpu.TimedOut
}

// stillWanted reports whether a shrink is still wanted (nil: always).
func stillWanted(wanted func() bool) bool { return wanted == nil || wanted() }
