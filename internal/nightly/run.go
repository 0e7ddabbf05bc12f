package nightly

import (
	"context"
	"errors"
	"fmt"
	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/interrupt"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/reference"
	"io"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/jobs"
	"github.com/moecheck/moecheck/internal/triage"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// Item is one fixed case of a nightly run (a corpus entry or a preset case).
type Item struct {
	ID     string // unique in the run: "corpus/<name>", "preset/<preset id>"
	Kind   string // KindCorpus or KindPreset
	Source string // where it comes from (file, preset)
	// Build makes the case; it is called when the item runs, so heavy cases are built one at
	// a time.
	Build func() (*moe.Case, error)
	// Poison is the policy single-run properties use (the zero value: zero-filled memory).
	Poison gpu.Poison
	// Origin is where the case comes from (a corpus file, a preset).
	Origin props.Origin
	// Properties run on the item (nil: Options.ItemProperties).
	Properties []props.Property
	// Repro is the command that reruns this item alone.
	Repro string
	// Skip, when set, records the item as skipped with this reason instead of running it.
	Skip string
	// Fail, when set, records the item as failed with this message instead of running it
	// (a corpus file that does not parse: the run goes on, the report shows it).
	Fail string
}

// Options configure Run. Backend and Results are required; every other zero value is valid:
// all properties, no fixed items, no random cases (the random part runs when Cases or
// Duration is set), seed 0, no shard, artifacts next to the results file, the real clock.
type Options struct {
	Backend gpu.Backend
	// BackendFlag is how the command line named the backend, for reproduce commands
	// (default Backend.Name()).
	BackendFlag string
	Faults      fault.Set
	NoStages    bool
	// Fit maps random specs into the backend's capabilities (props.Env.Fit; nil: none).
	Fit func(props.Spec) (props.Spec, error)
	// Contract, when set, is the path contract every case is judged under (--contract);
	// nil: the one the backend declares. Start records name the contract judged under.
	Contract *contract.Contract
	// New opens a fresh backend instance for the history property (props.Env.New; nil:
	// that property is skipped).
	New func() (gpu.Backend, error)
	// Sharpness pools the oracle's sharpness (oracle.Sharpness under the judging contract)
	// over this invocation's random cases into the end record (costs a float64 reference
	// and an end-to-end enclosure per case).
	Sharpness bool

	Items          []Item
	ItemProperties []props.Property // for items without their own (nil: props.All())

	Properties    []props.Property // random cases (nil: props.All())
	Seed          uint64
	Cases         int           // random case indices to visit over the whole run, resumes included
	Duration      time.Duration // random-phase time over the whole run, resumes included
	Gen           props.GenOptions
	Shard, Shards int
	MaxShrinks    int
	// Sample, when on, judges every case on a sample (props.Env.Sample, oracle.Sample: the
	// stage-local checks judge a seeded fraction of each tensor's rows, tokens and
	// weight-gradient rows, each element within the full check's bound). Start records name
	// it, case records say what each verdict judged and its miss bound (Record.Sample), and
	// reproduce lines carry the --sample flags.
	Sample oracle.Sample

	Results     string // the JSON Lines results file
	ArtifactDir string // default: <dir of Results>/artifacts
	NoArtifacts bool
	Resume      bool
	// Flags, when set, are recorded in every start record (RunInfo.Flags): the caller's
	// run-defining settings, for a resume to restore or compare.
	Flags map[string]string

	// Jobs is the number of cases run at once (0 or 1: one at a time), fixed items and
	// random cases alike (preset items one at a time: each is sized to the memory budget),
	// each job on its own backend: job 0 on Backend, job k on NewBackend(k), opened once.
	// Records are written in item and case order, identical whatever Jobs is
	// (props.RunConfig.Jobs). With Jobs > 1, failure
	// artifacts are built on a backend of their own, NewBackend(Jobs), opened at the first
	// failure (also with one job when NewBackend is set). Run closes the backends
	// NewBackend returned.
	Jobs       int
	NewBackend func(job int) (gpu.Backend, error)

	Now      func() time.Time // the clock for record times (default time.Now)
	Progress io.Writer        // one line per item (nil: silent)
}

// Outcome is what Run did.
type Outcome struct {
	Summary     *Summary // totals over the whole results file
	Ran         int      // items run by this invocation
	Skipped     int      // items already recorded, skipped on resume
	Interrupted bool     // the context ended before the run completed
	RandomNext  int      // the next random case index not visited
}

// ErrInterrupted is returned (wrapped) when the context ends mid-run; the results so far are
// on disk and Resume continues.
var ErrInterrupted = errors.New("nightly: run interrupted; resume it with the same results file")

// Run executes a nightly run, appending a record per item to Options.Results.
func Run(ctx context.Context, o Options) (*Outcome, error) {
	if o.Backend == nil {
		return nil, &UsageError{Err: fmt.Errorf("nightly: no backend")}
	}
	if o.Results == "" {
		return nil, &UsageError{Err: fmt.Errorf("nightly: no results file")}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BackendFlag == "" {
		o.BackendFlag = o.Backend.Name()
	}
	if o.ArtifactDir == "" {
		o.ArtifactDir = filepath.Join(filepath.Dir(o.Results), "artifacts")
	}
	if o.Shards <= 0 {
		o.Shards = 1
	}
	if o.Jobs > 1 && o.NewBackend == nil {
		return nil, &UsageError{Err: fmt.Errorf("nightly: %d jobs need Options.NewBackend (a backend per job)", o.Jobs)}
	}
	app, prev, err := openResults(o.Results, o.Resume)
	if err != nil {
		return nil, err
	}
	defer app.close()
	r := &runner{o: o, app: app, recs: prev, out: &Outcome{}}
	defer r.closeBackends()
	if err := r.checkResume(); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

// newBackend opens job k's backend (NewBackend) and keeps it to close at the end.
func (r *runner) newBackend(k int) (gpu.Backend, error) {
	b, err := r.o.NewBackend(k)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.opened = append(r.opened, b)
	r.mu.Unlock()
	return b, nil
}

func (r *runner) closeBackends() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.opened {
		b.Close()
	}
	r.opened = nil
}

// artifactBackend is the backend failure artifacts are built on: with NewBackend, one of
// its own (job 0 may be running a case on Backend meanwhile, and a fresh instance makes the
// artifact independent of what a job ran before, whatever Jobs is); else Backend.
func (r *runner) artifactBackend() (gpu.Backend, error) {
	if r.o.NewBackend == nil {
		return r.o.Backend, nil
	}
	if r.artB == nil {
		b, err := r.newBackend(r.o.Jobs)
		if err != nil {
			return nil, fmt.Errorf("nightly: opening the artifact backend: %w", err)
		}
		r.artB = b
	}
	return r.artB, nil
}

type runner struct {
	o     Options
	app   *appender
	recs  []Record // every record of the file, old and new
	out   *Outcome
	env   *props.Env
	sharp oracle.SharpnessPool // Options.Sharpness (pooled in commit order)

	mu     sync.Mutex         // guards opened (jobs open their backends concurrently)
	opened []gpu.Backend      // backends NewBackend returned, closed when Run returns
	artB   gpu.Backend        // the artifact backend with Jobs > 1
	envs   map[int]*props.Env // job k's environment, opened once for the items and the random cases
}

// jobEnv is job k's environment (job 0: Backend; job k: a backend from NewBackend(k)),
// opened at its first use and kept for the rest of the run. One goroutine per job calls it.
func (r *runner) jobEnv(k int) (*props.Env, error) {
	r.mu.Lock()
	env, ok := r.envs[k]
	r.mu.Unlock()
	if ok {
		return env, nil
	}
	if r.o.NewBackend == nil {
		return nil, fmt.Errorf("nightly: job %d needs Options.NewBackend", k)
	}
	b, err := r.newBackend(k)
	if err != nil {
		return nil, err
	}
	o := r.o
	env = &props.Env{Backend: b, Faults: o.Faults, NoStages: o.NoStages, Fit: o.Fit, Contract: o.Contract, New: o.New, Sample: o.Sample}
	r.mu.Lock()
	r.envs[k] = env
	r.mu.Unlock()
	return env, nil
}

// checkResume refuses to continue a file started with a different case stream.
func (r *runner) checkResume() error {
	for _, rec := range r.recs {
		if rec.Type != TypeStart || rec.Run == nil {
			continue
		}
		ri, o := rec.Run, r.o
		var diff []string
		if ri.Seed != o.Seed {
			diff = append(diff, fmt.Sprintf("seed %d (now %d)", ri.Seed, o.Seed))
		}
		if ri.Shard != o.Shard || ri.Shards != o.Shards {
			diff = append(diff, fmt.Sprintf("shard %d/%d (now %d/%d)", ri.Shard, ri.Shards, o.Shard, o.Shards))
		}
		if ri.Faults != faultString(o.Faults) {
			diff = append(diff, fmt.Sprintf("faults %q (now %q)", ri.Faults, faultString(o.Faults)))
		}
		if len(diff) > 0 {
			return &UsageError{Err: fmt.Errorf("nightly: %s was started with %s: resume with the same settings", r.o.Results, strings.Join(diff, ", "))}
		}
		return nil // the first start record decides
	}
	return nil
}

func faultString(f fault.Set) string {
	if f.Empty() {
		return ""
	}
	return f.String()
}

func (r *runner) emit(rec Record) error {
	rec.V = Version
	if rec.Time.IsZero() {
		rec.Time = r.o.Now().UTC()
	}
	if err := r.app.append(rec); err != nil {
		return err
	}
	r.recs = append(r.recs, rec)
	return nil
}

func (r *runner) progress(format string, a ...any) {
	if r.o.Progress != nil {
		fmt.Fprintf(r.o.Progress, format, a...)
	}
}

func (r *runner) run(ctx context.Context) (*Outcome, error) {
	o := r.o
	r.env = &props.Env{Backend: o.Backend, Faults: o.Faults, NoStages: o.NoStages, Fit: o.Fit, Contract: o.Contract, New: o.New, Sample: o.Sample}
	r.envs = map[int]*props.Env{0: r.env}
	done := map[string]bool{}
	next, randomTime := 0, time.Duration(0)
	for _, rec := range Cases(r.recs) {
		done[rec.ID] = true
		if rec.Kind == KindRandom && rec.Index != nil {
			next = max(next, *rec.Index+1)
			randomTime += time.Duration(rec.ElapsedMS * float64(time.Millisecond))
		}
	}
	info := &RunInfo{Backend: o.BackendFlag, Faults: faultString(o.Faults), NoStages: o.NoStages, Seed: o.Seed,
		Cases: o.Cases, BudgetS: o.Duration.Seconds(), Shard: o.Shard, Shards: o.Shards,
		Properties: propNames(o.Properties), Resumed: len(r.recs) > 0, Start: next, Flags: o.Flags,
		Contract: r.env.JudgeContract().String()}
	if o.Sample.On() {
		info.Sample = &SampleRecord{Fraction: o.Sample.Fraction, Seed: o.Sample.Seed}
	}
	for _, it := range o.Items {
		switch it.Kind {
		case KindCorpus:
			info.Corpus++
		case KindPreset:
			info.Presets = append(info.Presets, it.ID)
		}
	}
	if err := r.emit(Record{Type: TypeStart, Run: info}); err != nil {
		return nil, err
	}
	if info.Resumed {
		r.progress("resuming %s: %d item(s) recorded, random cases from index %d\n", o.Results, len(done), next)
	}
	// fixed items, o.Jobs at a time (preset cases one at a time: each is sized to the
	// memory budget), recorded in order
	var todo []Item
	for _, it := range o.Items {
		if done[it.ID] {
			r.out.Skipped++
			continue
		}
		todo = append(todo, it)
	}
	var itemErr error
	var presetMu sync.Mutex
	ordered := jobs.Ordered[itemResult]
	if o.Jobs <= 1 {
		ordered = sequential[itemResult] // one job: item i+1 starts after item i's artifact, as ever
	}
	ordered(len(todo), o.Jobs, func(job, i int) itemResult {
		if ctx.Err() != nil {
			return itemResult{err: ctx.Err()}
		}
		env, err := r.jobEnv(job)
		if err != nil {
			return itemResult{err: err}
		}
		if todo[i].Kind == KindPreset {
			presetMu.Lock()
			defer presetMu.Unlock()
		}
		return r.runItem(ctx, env, todo[i])
	}, func(i int, res itemResult) bool {
		if res.err == nil {
			res.err = r.commitItem(ctx, todo[i], res)
		}
		if res.err != nil {
			itemErr = res.err
			return false
		}
		r.out.Ran++
		return true
	})
	if itemErr != nil || ctx.Err() != nil {
		if ctx.Err() != nil {
			return r.interrupted()
		}
		return r.out, itemErr
	}
	// random cases
	r.out.RandomNext = next
	cases, budget := 0, time.Duration(0)
	if o.Cases > 0 {
		cases = o.Cases - next
	}
	if o.Duration > 0 {
		budget = o.Duration - randomTime
	}
	runRandom := (o.Cases > 0 && cases > 0 && (o.Duration == 0 || budget > 0)) || (o.Cases == 0 && budget > 0)
	if runRandom {
		var cbErr error
		rctx, cancel := context.WithCancel(ctx)
		rep, err := props.Run(rctx, props.RunConfig{Env: r.env, Properties: o.Properties, Gen: o.Gen, Seed: o.Seed,
			Cases: cases, Duration: budget, Start: next, Shard: o.Shard, Shards: o.Shards, KeepGoing: true,
			MaxShrinks: o.MaxShrinks, Jobs: o.Jobs,
			NewEnv: r.jobEnv,
			OnCase: func(cr props.CaseResult) {
				if cbErr != nil || rctx.Err() != nil {
					return // interrupted: the case is redone on resume
				}
				if cbErr = r.random(rctx, cr); cbErr != nil {
					cancel()
				}
			}})
		cancel()
		if rep != nil {
			r.out.RandomNext = rep.Next
		}
		if cbErr != nil {
			return r.out, cbErr
		}
		if ctx.Err() != nil {
			return r.interrupted()
		}
		if err != nil {
			return r.out, fmt.Errorf("nightly: random cases: %w", err)
		}
	}
	sum := Summarize(r.recs)
	r.out.Summary = sum
	end := Record{Type: TypeEnd, Summary: sum}
	if r.o.Sharpness {
		end.Sharpness = sharpnessRecord(r.env.JudgeContract().String(), &r.sharp)
	}
	if err := r.emit(end); err != nil {
		return r.out, err
	}
	return r.out, nil
}

func (r *runner) interrupted() (*Outcome, error) {
	r.out.Interrupted = true
	r.out.Summary = Summarize(r.recs)
	return r.out, ErrInterrupted
}

func propNames(ps []props.Property) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// itemResult is what running a fixed item produced, for commitItem to record.
type itemResult struct {
	rec    Record
	c      *moe.Case
	failed *props.Outcome
	done   bool // rec is complete (skipped, failed without running): record it as is
	err    error
}

// runItem runs one fixed item on env (a job's environment): the record without its
// artifact.
func (r *runner) runItem(ctx context.Context, env *props.Env, it Item) itemResult {
	rec := Record{Type: TypeCase, ID: it.ID, Kind: it.Kind, Source: it.Source, Repro: it.Repro}
	if it.Skip != "" {
		rec.Status, rec.Message = StatusSkip, it.Skip
		return itemResult{rec: rec, done: true}
	}
	if it.Fail != "" {
		rec.Status, rec.Message = StatusFail, it.Fail
		return itemResult{rec: rec, done: true}
	}
	t0 := time.Now()
	c, err := interrupt.Do(ctx, it.Build)
	if ctx.Err() != nil {
		return itemResult{err: ctx.Err()}
	}
	if err != nil {
		rec.Status, rec.Message = StatusSkip, "cannot build the case: "+err.Error()
		return itemResult{rec: rec, done: true}
	}
	rec.Config = c.Config.String()
	ps := it.Properties
	if len(ps) == 0 {
		ps = r.o.ItemProperties
	}
	if len(ps) == 0 {
		ps = props.All()
	}
	outs, failed, err := props.CheckTrial(ctx, env, ps, props.Trial{Case: c, Poison: it.Poison, Origin: it.Origin})
	if u, ok := gpu.IsUnsupported(err); ok {
		rec.Status, rec.Message = StatusSkip, "unsupported by the backend: "+u.Reason
		return itemResult{rec: rec, done: true}
	}
	if err != nil {
		return itemResult{err: fmt.Errorf("nightly: %s: %w", it.ID, err)}
	}
	rec.ElapsedMS = ms(time.Since(t0))
	r.fill(&rec, outs, failed)
	res := itemResult{rec: rec, failed: failed}
	if failed != nil {
		res.c = c // kept for the artifact, built when the record is committed
	}
	return res
}

// commitItem writes an item's artifact (for a failure) and its record, in item order.
func (r *runner) commitItem(ctx context.Context, it Item, res itemResult) error {
	rec := res.rec
	if res.done {
		switch rec.Status {
		case StatusSkip:
			r.progress("  skip  %s: %s\n", it.ID, rec.Message)
		default:
			r.progress("  FAIL  %s: %s\n", it.ID, rec.Message)
		}
		return r.emit(rec)
	}
	if res.failed != nil {
		if err := r.artifact(ctx, &rec, res.c, ""); err != nil {
			return err
		}
	}
	r.report(rec)
	return r.emit(rec)
}

// random records one random case.
func (r *runner) random(ctx context.Context, cr props.CaseResult) error {
	idx := cr.Index
	rec := Record{Type: TypeCase, ID: fmt.Sprintf("random/%d/%d", r.o.Seed, idx), Kind: KindRandom, Index: &idx,
		Spec: cr.Spec.String(), ElapsedMS: ms(cr.Elapsed)}
	spec := cr.Spec
	if c, err := cr.Spec.Build(); err == nil {
		rec.Config = c.Config.String()
	}
	if cr.Unsupported != "" {
		rec.Status, rec.Message = StatusSkip, "unsupported by the backend: "+cr.Unsupported
		return r.emit(rec)
	}
	if r.o.Sharpness && cr.Trial.Case != nil {
		if err := r.addSharpness(cr.Trial.Case); err != nil {
			return err
		}
	}
	if cr.Shrunk != nil {
		rec.ElapsedMS += ms(cr.Shrunk.Elapsed)
		if cr.Shrunk.Outcome != nil {
			spec = cr.Shrunk.Spec
			rec.Shrunk = spec.String()
		}
	}
	r.fill(&rec, cr.Outcomes, cr.Failed)
	if !cr.Pass {
		if cr.Shrunk != nil && cr.Shrunk.Outcome != nil { // report what the shrunk case breaks
			rec.Property, rec.Message = cr.Shrunk.Outcome.Property, cr.Shrunk.Outcome.Message
			rec.Failures = failureRecords(cr.Shrunk.Outcome)
			rec.Sample = outcomeSample(nil, cr.Shrunk.Outcome) // the shrunk verdict's own (nil: judged whole)
		}
		tr := props.Trial{Origin: props.Origin{Kind: props.FromSpec, Spec: spec}}
		if cr.Shrunk != nil && cr.Shrunk.Trial.Prior != nil {
			tr = cr.Shrunk.Trial // a history pair: both specs
		}
		rec.Repro = props.Reproduce(tr,
			props.How{Backend: r.o.BackendFlag, Faults: r.o.Faults, NoStages: r.o.NoStages, Contract: r.contractRepro(), Sample: sampleRepro(r.o.Sample)})
		c, err := spec.Build()
		if err != nil {
			return fmt.Errorf("nightly: %s: %w", rec.ID, err)
		}
		if err := r.artifact(ctx, &rec, c, spec.String()); err != nil {
			return err
		}
	}
	r.report(rec)
	return r.emit(rec)
}

// fill sets the status, properties and failures of a record from property outcomes.
func (r *runner) fill(rec *Record, outs []*props.Outcome, failed *props.Outcome) {
	for _, o := range outs {
		rec.Properties = append(rec.Properties, o.Property)
		if o.Verdict != nil && o.Pass {
			rec.MaxRatio = Float(math.Max(float64(rec.MaxRatio), o.Verdict.MaxRatio()))
		}
	}
	rec.Sample = outcomeSample(outs, failed)
	rec.Status = StatusPass
	if failed == nil {
		return
	}
	rec.Status = StatusFail
	rec.Property, rec.Message = failed.Property, failed.Message
	rec.Failures = failureRecords(failed)
	if v := failed.Verdict; v != nil && v.CaseError != nil {
		rec.CaseError = v.CaseError.Kind.String()
	}
	if st, _, _, ok := triage.FirstStage(failed.Failures); ok {
		rec.FirstStage = st.String()
	}
}

// maxFailures bounds the failures kept per record.
const maxFailures = 16

func failureRecords(o *props.Outcome) []FailureRecord {
	var out []FailureRecord
	for i, f := range o.Failures {
		if i == maxFailures {
			break
		}
		out = append(out, failureRecord(f))
	}
	return out
}

// artifact writes the failure's artifact and links it from the record.
func (r *runner) artifact(ctx context.Context, rec *Record, c *moe.Case, spec string) error {
	if r.o.NoArtifacts {
		return nil
	}
	ab, err := r.artifactBackend()
	if err != nil {
		return err
	}
	a, err := interrupt.Do(ctx, func() (*Artifact, error) {
		return BuildArtifactUnder(ctx, ab, r.o.Faults, r.env.JudgeContract(), c)
	})
	if err != nil {
		return fmt.Errorf("nightly: %s: %w", rec.ID, err)
	}
	a.ID, a.Spec = rec.ID, spec
	if a.FirstStage != "" {
		rec.FirstStage = a.FirstStage
	}
	path := filepath.Join(r.o.ArtifactDir, artifactName(rec.ID))
	if err := WriteArtifact(path, a); err != nil {
		return err
	}
	if rel, err := filepath.Rel(filepath.Dir(r.o.Results), path); err == nil {
		rec.Artifact = filepath.ToSlash(rel)
	} else {
		rec.Artifact = path
	}
	return nil
}

func (r *runner) report(rec Record) {
	if rec.Status == StatusPass && rec.Sample != nil {
		r.progress("  pass  %s (%.2fs) ON A SAMPLE: fraction %g, seed %d; a fault in ≥ %d units of a tensor escapes with probability ≤ %g\n",
			rec.ID, rec.ElapsedMS/1000, rec.Sample.Fraction, rec.Sample.Seed, rec.Sample.MaxMissM(), rec.Sample.Delta)
		return
	}
	if rec.Status == StatusPass {
		r.progress("  pass  %s (%.2fs)\n", rec.ID, rec.ElapsedMS/1000)
		return
	}
	msg := rec.Message
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	r.progress("  FAIL  %s (%.2fs) %s", rec.ID, rec.ElapsedMS/1000, rec.Property)
	if rec.Shrunk != "" {
		// the message, stage and location are the shrunk case's, not the generated one's
		r.progress(", shrunk to %s", rec.Shrunk)
	}
	if rec.FirstStage != "" {
		r.progress(", first stage %s", rec.FirstStage)
	}
	r.progress(": %s\n", msg)
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)) / 1000 }

// sequential is jobs.Ordered with one job and no overlap: work(0, i), then commit(i, …),
// then the next index.
func sequential[T any](n, _ int, work func(job, i int) T, commit func(i int, v T) bool) {
	for i := 0; i < n; i++ {
		if !commit(i, work(0, i)) {
			return
		}
	}
}

// contractRepro is the --contract a reproduce line carries: the override's name when it
// differs from the backend's own contract.
func (r *runner) contractRepro() string {
	if r.env.ContractOverridden() {
		return r.env.JudgeContract().String()
	}
	return ""
}

// addSharpness pools case c's sharpness (Options.Sharpness).
func (r *runner) addSharpness(c *moe.Case) error {
	en, err := oracle.EncloseUnder(c, r.env.JudgeContract())
	if err != nil {
		return fmt.Errorf("nightly: sharpness: %w", err)
	}
	ref, err := reference.Run(c, reference.Options{})
	if err != nil {
		return fmt.Errorf("nightly: sharpness: %w", err)
	}
	r.sharp.Add(c, en, ref)
	return nil
}
