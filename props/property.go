package props

import (
	"context"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"io"
	"strings"

	"github.com/moecheck/moecheck/contract"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/phase"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// Env is what a property runs against: the backend, the faults to switch on in every run
// (mutation testing) and whether to ask for stage intermediates.
type Env struct {
	Backend gpu.Backend
	Faults  fault.Set
	// NoStages runs without stage capture (end-to-end checks only), as for a black-box
	// backend.
	NoStages bool
	// Fit, when set, maps a generated or shrunk spec into the backend's capabilities (or
	// returns a *gpu.UnsupportedError); see unsupported.go.
	Fit func(Spec) (Spec, error)
	// Contract, when set, is the path contract every property judges under (the CLI's
	// --contract); nil: the contract the backend declares (gpu.ContractOf). See contract.go.
	Contract *contract.Contract
	// New, when set, opens a fresh instance of the backend under test (same configuration):
	// the history property compares a run after another case with a run on a fresh instance.
	// Nil: the history property is skipped, with a note. The caller closes what New returns.
	New func() (gpu.Backend, error)
	// Trace, when non-nil, receives a timeline of each backend run and oracle check (wall
	// time, CPU time, cores busy: package internal/phase; the CLI's MOECHECK_TRACE). Nil
	// writes nothing.
	Trace io.Writer
	// Sample, when on, makes every stage-local judgement a sampled check (oracle.Sample: a
	// seeded subset of rows, tokens and weight-gradient rows, each with the full check's
	// bound; the verdict's Sample says what was judged). Judgements end to end stay whole.
	// The zero value checks everything.
	Sample oracle.Sample

	checker oracle.Checker // reused scratch memory for the oracle
	cache   trialCache     // what the properties of the current trial share (shared.go)
	encl    enclCache      // the last end-to-end enclosure under a contract (contract.go)
}

// check runs the oracle with the environment's reusable checker.
func (env *Env) check(c *moe.Case, r *gpu.Result, o oracle.Options) (*oracle.Verdict, error) {
	v, _, err := env.checkJudged(c, r, o)
	return v, err
}

// checkJudged is check, also returning the run as an oracle.Judged when the verdict is a
// pass of a full stage-local check (oracle.Checker.CheckJudged), nil otherwise.
func (env *Env) checkJudged(c *moe.Case, r *gpu.Result, o oracle.Options) (*oracle.Verdict, *oracle.Judged, error) {
	o.Contract = env.JudgeContract()
	if o.Stop == nil {
		o.Stop = env.cache.stop
	}
	if o.Enclosure == nil && (r == nil || r.Stages == nil || o.SkipStages) { // judged end to end
		en, err := env.enclosure(c, o.Contract)
		if err != nil {
			return nil, nil, err
		}
		o.Enclosure = en
	}
	o.Trace = env.Trace
	if o.Sample == (oracle.Sample{}) {
		o.Sample = env.Sample
	}
	ph := phase.New(env.Trace, "trace: ").Start("oracle check")
	defer ph.End()
	return env.checker.CheckJudged(c, r, o)
}

// Outcome is a property's judgement of one case.
type Outcome struct {
	Property string
	Pass     bool
	Failures []oracle.Failure
	Verdict  *oracle.Verdict // the oracle's verdict, when the property ran the oracle
	Message  string          // one line: what broke
}

func pass(name string, v *oracle.Verdict) *Outcome {
	return &Outcome{Property: name, Pass: true, Verdict: v}
}

func failed(name string, fs []oracle.Failure, v *oracle.Verdict, msg string) *Outcome {
	if msg == "" && len(fs) > 0 {
		msg = fs[0].String()
	}
	return &Outcome{Property: name, Failures: fs, Verdict: v, Message: msg}
}

// Property is one checkable statement about a path. Check returns an error only for an
// internal or device failure that ends the run; a crashed case is a failing Outcome.
type Property struct {
	Name string
	Doc  string
	// Applies reports whether the property says anything about this case (e.g. EP split-sum
	// needs EP); nil means always.
	Applies func(c *moe.Case) bool
	// Check judges one trial: its case, run under its poison policy where the property runs
	// once (properties that compare policies choose their own).
	Check func(ctx context.Context, env *Env, t Trial) (*Outcome, error)
	// Promise, when set, is the contract promise under which the property compares its runs
	// bitwise; where the contract does not make it, the property judges each run within the
	// contract's enclosure instead (see Judgement).
	Promise func(contract.Promises) bool
	// PromiseDoc names that promise ("bitwise reruns").
	PromiseDoc string
}

// allProperties is the default property suite, in the order the runner tries them.
var allProperties = []Property{matches, poisonInvariance, deterministic, tokenPermutation, zeroWeightIsSentinel, powerOfTwoScaling, epSplitSum, history}

// ByName finds a property.
func ByName(name string) (Property, error) {
	var names []string
	for _, p := range allProperties {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return Property{}, fmt.Errorf("props: unknown property %q (known: %s)", name, strings.Join(names, ", "))
}

// run executes one backend run with stage capture (unless NoStages); a *gpu.CaseError
// becomes a failing outcome.
func (env *Env) run(ctx context.Context, name string, c *moe.Case, poison gpu.Poison, seed uint64) (*gpu.Result, *Outcome, error) {
	return env.runWith(ctx, name, c, gpu.RunOptions{Poison: poison, PoisonSeed: seed, Stages: !env.NoStages})
}

// runOutputs is run without stage capture, for a run whose stages nothing reads (a
// property that compares outputs only): the backend skips copying its intermediates.
func (env *Env) runOutputs(ctx context.Context, name string, c *moe.Case, poison gpu.Poison, seed uint64) (*gpu.Result, *Outcome, error) {
	return env.runWith(ctx, name, c, gpu.RunOptions{Poison: poison, PoisonSeed: seed})
}

func (env *Env) runWith(ctx context.Context, name string, c *moe.Case, ro gpu.RunOptions) (*gpu.Result, *Outcome, error) {
	var ph phase.Span
	if env.Trace != nil { // the name is built only for a timeline
		ph = phase.New(env.Trace, "trace: ").Start("run " + env.Backend.Name())
	}
	r, err := fault.Run(ctx, env.Backend, c, ro, env.Faults)
	ph.End()
	if err != nil {
		if ce, ok := gpu.AsCaseError(err); ok {
			v := oracle.CaseErrorVerdict(ce)
			return nil, failed(name, v.Failures, v, ce.Error()), nil
		}
		return nil, nil, fmt.Errorf("props: %s: backend %s: %w", name, env.Backend.Name(), err)
	}
	return r, nil, nil
}

// All returns the default property suite, in the order the runner tries them (a fresh copy: the table itself cannot be changed from outside).
func All() []Property { return append([]Property(nil), allProperties...) }
