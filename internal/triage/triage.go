package triage

import (
	"context"
	"fmt"
	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/internal/fault"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

// Options tune triage. The zero value is valid: the backend under test is a fresh gpu/sim
// without faults, every catalog fault is a candidate, reproduced by a fresh gpu/sim, the
// three best matches are printed, and specs are shrunk with the default budget.
type Options struct {
	// Backend is the path under test (nil: sim.New(sim.Options{})).
	Backend gpu.Backend
	// Faults are switched on in the backend under test (demonstrations, mutation testing).
	Faults fault.Set
	// Candidates are the faults of the differential diagnosis (nil: the whole catalog).
	Candidates []fault.Fault
	// Reference reproduces the candidate faults (nil: sim.New(sim.Options{})).
	Reference gpu.Backend
	// Top is how many matches Write prints (0: 3).
	Top int
	// NoShrink keeps a failing spec as given; MaxShrinks bounds shrinking (0: props' default).
	NoShrink   bool
	MaxShrinks int
	// Properties find the failing property of a spec before shrinking (nil: props.All()).
	Properties []props.Property
	// Fit keeps shrink candidates inside the backend's capabilities (props.Env.Fit; nil: none).
	Fit func(props.Spec) (props.Spec, error)
	// Contract, when set, is the path contract the backend is judged under (--contract); nil:
	// the one it declares (gpu.ContractOf). The candidates' signatures are judged under it too.
	Contract *contract.Contract
	// New opens a fresh backend instance for the history property (nil: skipped).
	New func() (gpu.Backend, error)
}

// judge is the contract triage judges under.
func (o Options) judge() contract.Contract {
	if o.Contract != nil {
		return *o.Contract
	}
	return gpu.ContractOf(o.Backend)
}

// Match is one candidate fault of the differential diagnosis.
type Match struct {
	Fault     fault.Info
	Score     float64   // Similarity with the observed signature
	Signature Signature // what the fault does to this case in gpu/sim
}

// Report is the result of triage.
type Report struct {
	Case     *moe.Case
	Spec     *props.Spec   // the spec triaged (after shrinking), when triage started from a spec
	Original *props.Spec   // the spec before shrinking
	Shrunk   *props.Shrunk // the shrink record
	// TokensShrunk is the shrink record of a case without a spec (Tokens): tokens removed
	// from OriginalT while the property still failed.
	TokensShrunk *props.ShrunkCase
	OriginalT    int
	Property     string // the failing property of the spec or case, if one failed
	Backend      string
	Contract     string // the contract the backend was judged under
	Faults       fault.Set
	Observed     Signature
	Matches      []Match // every candidate, best first (ties in catalog order)
	Top          int
	Elapsed      time.Duration
}

// Failed reports whether triage observed any failure.
func (r *Report) Failed() bool { return !r.Observed.Empty() }

// Best returns the best-ranked matches: those sharing the top score (ties), at least one
// when there is any candidate with a score above 0.
func (r *Report) Best() []Match {
	var out []Match
	for _, m := range r.Matches {
		if m.Score <= 0 || (len(out) > 0 && m.Score < out[0].Score) {
			break
		}
		out = append(out, m)
	}
	return out
}

func (o Options) withDefaults() Options {
	if o.Backend == nil {
		o.Backend = sim.New(sim.Options{})
	}
	if o.Reference == nil {
		o.Reference = sim.New(sim.Options{})
	}
	if len(o.Candidates) == 0 {
		for _, fi := range fault.Catalog() {
			o.Candidates = append(o.Candidates, fi.Fault)
		}
	}
	if o.Top <= 0 {
		o.Top = 3
	}
	if len(o.Properties) == 0 {
		o.Properties = props.All()
	}
	return o
}

// Case triages one case: it observes the backend under test and ranks the candidate faults
// by the similarity of their signatures on the same case. It returns an error only for an
// invalid case or an internal or device error; a crash of the case is part of the signature.
func Case(ctx context.Context, c *moe.Case, o Options) (*Report, error) {
	t0 := time.Now()
	o = o.withDefaults()
	ct := o.judge()
	en, err := oracle.EncloseUnder(c, ct)
	if err != nil {
		return nil, fmt.Errorf("triage: %w", err)
	}
	ob := &observer{c: c, en: en, ct: ct}
	rep := &Report{Case: c, Backend: o.Backend.Name(), Contract: ct.String(), Faults: o.Faults, Top: o.Top}
	if rep.Observed, err = ob.observe(ctx, o.Backend, o.Faults); err != nil {
		return nil, err
	}
	if rep.Failed() {
		for _, f := range o.Candidates {
			info, ok := f.Info()
			if !ok {
				return nil, fmt.Errorf("triage: unknown fault %d", f)
			}
			sig, err := ob.observe(ctx, o.Reference, fault.Of(f))
			if err != nil {
				return nil, fmt.Errorf("triage: reproducing %s: %w", info.Name, err)
			}
			rep.Matches = append(rep.Matches, Match{Fault: info, Score: Similarity(rep.Observed, sig), Signature: sig})
		}
		sort.SliceStable(rep.Matches, func(i, j int) bool { return rep.Matches[i].Score > rep.Matches[j].Score })
	}
	rep.Elapsed = time.Since(t0)
	return rep, nil
}

// Spec triages a generated spec: it runs the properties on it and, if one fails, shrinks the
// spec against that property first (unless NoShrink), then triages the shrunk case.
func Spec(ctx context.Context, s props.Spec, o Options) (*Report, error) {
	t0 := time.Now()
	o = o.withDefaults()
	env := &props.Env{Backend: o.Backend, Faults: o.Faults, Fit: o.Fit, Contract: o.Contract, New: o.New}
	cr, err := props.RunSpec(ctx, env, o.Properties, s)
	if err != nil {
		return nil, fmt.Errorf("triage: %w", err)
	}
	orig, cur := s, s
	var shrunk *props.Shrunk
	prop := ""
	if !cr.Pass {
		prop = cr.Failed.Property
		if !o.NoShrink {
			_, shrinker := props.SpecAt(0, 0, props.GenOptions{}) // per-field shrinkers; they do not depend on the sample
			if shrunk, err = props.ShrinkFailure(ctx, env, prop, s, shrinker, o.MaxShrinks); err != nil {
				return nil, fmt.Errorf("triage: shrinking: %w", err)
			}
			cur = shrunk.Spec
		}
	}
	c, err := cur.Build()
	if err != nil {
		return nil, err
	}
	rep, err := Case(ctx, c, o)
	if err != nil {
		return nil, err
	}
	rep.Spec, rep.Original, rep.Shrunk, rep.Property = &cur, &orig, shrunk, prop
	rep.Elapsed = time.Since(t0)
	return rep, nil
}

// Tokens triages a trial whose case has no generating spec (a corpus file, a preset case):
// it runs the properties on it and, if one fails, shrinks the case by removing tokens while
// that property still fails (unless NoShrink), then triages the smallest case.
func Tokens(ctx context.Context, t props.Trial, o Options) (*Report, error) {
	t0 := time.Now()
	o = o.withDefaults()
	c := t.Case
	env := &props.Env{Backend: o.Backend, Faults: o.Faults, Contract: o.Contract, New: o.New}
	_, failed, err := props.CheckTrial(ctx, env, o.Properties, t)
	if err != nil {
		return nil, fmt.Errorf("triage: %w", err)
	}
	cur := c
	var shrunk *props.ShrunkCase
	prop := ""
	if failed != nil {
		prop = failed.Property
		if !o.NoShrink {
			if shrunk, err = props.ShrinkTokens(ctx, env, prop, t, o.MaxShrinks); err != nil {
				return nil, fmt.Errorf("triage: %w", err)
			}
			cur = shrunk.Case
		}
	}
	rep, err := Case(ctx, cur, o)
	if err != nil {
		return nil, err
	}
	rep.TokensShrunk, rep.OriginalT, rep.Property = shrunk, c.T, prop
	rep.Elapsed = time.Since(t0)
	return rep, nil
}

// Write prints the report: the case, the observed failures, the first stage and where, and
// the best-matching fault classes with their provenance.
func (r *Report) Write(w io.Writer) error {
	ew := &errWriter{w: w}
	p := ew.printf
	p("case:     %s\n", r.Case.Config)
	if r.Spec != nil {
		p("spec:     %s\n", r.Spec)
		if r.Shrunk != nil && r.Shrunk.Steps > 0 {
			p("          shrunk in %d steps (%d tries) from %s\n", r.Shrunk.Steps, r.Shrunk.Tries, r.Original)
		}
	}
	if r.TokensShrunk != nil && r.TokensShrunk.Steps > 0 {
		p("          shrunk from T=%d by removing tokens in %d steps (%d tries)\n", r.OriginalT, r.TokensShrunk.Steps, r.TokensShrunk.Tries)
	}
	plan, err := r.Case.Plan()
	if err == nil {
		p("routing:  %d slots, %d real rows, sentinel tail rows %d..%d; rows per expert %v\n",
			r.Case.S(), plan.Rows, plan.Rows, r.Case.S()-1, plan.Counts)
	}
	p("backend:  %s", r.Backend)
	if !r.Faults.Empty() {
		p(" with faults %s", r.Faults)
	}
	if r.Contract != "" {
		p(", judged under contract %s", r.Contract)
	}
	p("\n")
	if r.Property != "" {
		p("property: %s failed\n", r.Property)
	}
	if !r.Failed() {
		p("\nno failure observed under NaN, signature and zero poison, nor between two runs: nothing to triage\n")
		return ew.err
	}
	o := r.Observed
	p("\nobserved (poison nan, signature, nan again, zeros): %d failure(s)\n", len(o.Failures))
	for i, f := range o.Failures {
		if i == 12 {
			p("  … %d more\n", len(o.Failures)-i)
			break
		}
		st, local := f.Stage()
		scope := "end-to-end"
		if local {
			scope = "local"
		}
		p("  - [%s, %s] %s\n", st, scope, f)
	}
	p("\nfirst stage: %s", o.FirstStage)
	if !o.Local {
		p(" (end-to-end only: the backend reported no stages, the error may arise upstream)")
	}
	p("\n  where: %s\n", describeLocation(o.First.Worst))
	if o.First.Check != oracle.CheckCaseError {
		p("  check: %s, %d element(s); got %.6g, want %.6g ± %.6g\n", o.First.Check, o.First.Count, o.First.Got, o.First.Want, o.First.Bound)
	}
	if h := hint(o); h != "" {
		p("  hint:  %s\n", h)
	}
	p("\nsuggested fault classes (differential diagnosis: gpu/sim with each catalog fault on this case):\n")
	p("  %-5s  %-21s %-24s %s\n", "score", "fault", "first stage", "provenance")
	var none []string
	shown := 0
	for _, m := range r.Matches {
		if m.Signature.Empty() {
			none = append(none, m.Fault.Name)
			continue
		}
		if shown >= r.Top {
			continue
		}
		shown++
		fs := m.Signature.FirstStage.String()
		if m.Signature.Tail {
			fs += " (tail)"
		}
		p("  %.2f   %-21s %-24s %s\n", m.Score, m.Fault.Name, fs, m.Fault.Provenance)
		p("         %s\n", m.Fault.Doc)
	}
	if best := r.Best(); len(best) > 1 {
		var n []string
		for _, m := range best {
			n = append(n, m.Fault.Name)
		}
		p("  tie: %s look the same on this case\n", strings.Join(n, ", "))
	}
	if len(none) > 0 {
		p("  no effect on this case: %s\n", strings.Join(none, ", "))
	}
	return ew.err
}

// describeLocation spells out a location for people.
func describeLocation(l oracle.Location) string {
	var parts []string
	add := func(k string, v int) {
		if v >= 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
	}
	parts = append(parts, fmt.Sprintf("%s[%d]", l.Tensor, l.Index))
	add("token", l.Token)
	add("slot", l.Slot)
	add("expert", l.Expert)
	add("sorted row", l.SortedRow)
	add("row", l.Row)
	add("col", l.Col)
	if l.SortedRow >= 0 {
		if l.Sentinel {
			parts = append(parts, "in the sentinel tail")
		} else {
			parts = append(parts, "a real row")
		}
	}
	if l.Buffer != 0 {
		parts = append(parts, "poison of buffer "+l.Buffer.String()+" survived")
	}
	return strings.Join(parts, ", ")
}

// hint says in words what a first failure usually means.
func hint(s Signature) string {
	f := s.First
	switch {
	case s.FirstStage == StageCrash:
		return "the backend crashed, hung or ran out of memory on this case"
	case s.FirstStage == moe.StagePlan:
		return "the sort or the per-expert offsets differ from the routing: histogram, offsets or sentinel handling"
	case f.Worst.Buffer != 0:
		return "a buffer was read where it was never written (" + f.Worst.Buffer.String() + "): a missing mask or a skipped tile"
	case s.Tail && f.Check != oracle.CheckNonFinite:
		return "sentinel-tail rows hold values: a mask is missing or sentinel rows are computed as an expert"
	case s.Tail:
		return "non-finite values in the sentinel tail: unwritten memory is read there"
	case f.Check == oracle.CheckEmptyWgrad:
		return "an expert with no rows got a nonzero weight gradient: unwritten wgrad output"
	case f.Check == oracle.CheckSentinelDRW || f.Check == oracle.CheckSentinelOut:
		return "a sentinel slot contributed: leak through the routing-weight gradient or output"
	case f.Check == "rerun":
		return "two identical runs differ: nondeterministic reduction order or a race"
	case f.Check == "poison":
		return "the result depends on what uninitialized memory held"
	case f.Check == oracle.CheckStage:
		return "values outside the stage's own rounding bound: wrong accumulation precision, wrong operands or wrong weights"
	}
	return ""
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, a ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, a...)
	}
}
