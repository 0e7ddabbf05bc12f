package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/backends"
	"github.com/moecheck/moecheck/internal/presets"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

type checkFlags struct {
	bf         backendFlags
	seed       uint64
	cases      int
	budget     time.Duration
	dtypes     string
	widePct    int
	shard      string
	properties string
	spec       string
	thenSpec   string
	sharpness  bool
	preset     string
	start      int
	keepGoing  bool
	maxShrinks int
	noShrink   bool
	sample     float64
	sampleSeed uint64
}

func (a *app) checkCmd() *cobra.Command {
	f := &checkFlags{}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Random property run against a backend, with shrinking and a one-line reproduce command",
		Long: `check generates cases (sizes, EP ranks, dtypes, activations, layouts, biases, routing with
sentinels and empty experts, weight and data modes, poison policies) and checks every property
on each: results within the derived bounds (stage by stage when the backend reports stages),
bitwise invariance under every poison fill, determinism, token-permutation equivariance, a
zero-weight slot acting like a sentinel, power-of-two scaling.

Case i of a seed is the same on every machine, so shards see identical streams: --shard i/n
runs the indices ≡ i (mod n). On a cluster use --shard env: the index is read from
SLURM_ARRAY_TASK_ID (Slurm job arrays, minus SLURM_ARRAY_TASK_MIN) or JOB_COMPLETION_INDEX
(Kubernetes indexed Jobs), the count from --shard env/N, SLURM_ARRAY_TASK_COUNT or
MOECHECK_SHARDS (set it to the Job's completions).

On the first failure check shrinks the case (fewer tokens, experts, smaller sizes, simpler
modes), prints the failing checks with their locations and a reproduce command, and exits 1.
--spec runs exactly one spec: the reproduce command of a failure.`,
		Example: `  moecheck check --cases 500
  moecheck check --time 10m --dtype bf16,fp16 --seed 7
  moecheck check --backend cuda --time 1h --shard env          # Slurm array or k8s indexed Job
  moecheck check --faults no-mask-up-dgrad --cases 50          # watch a known bug get caught
  moecheck check --spec 'T=1 H=1 I=1 E=1 K=2 world=2 rank=0 global=0 dtype=bf16 act=swiglu layout=standard bias=0 routing=uniform weights=unit data=normal poison=nan seed=5'
  moecheck check --preset qwen3-30b-a3b/ep8/rank3/T4/seed1 --properties matches`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runCheck(cmd, f) },
	}
	fs := cmd.Flags()
	f.bf.register(fs, true)
	f.bf.registerJobs(fs)
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the case stream (case i of a seed is identical everywhere)")
	fs.IntVar(&f.cases, "cases", 0, "case indices to visit (default 100 unless --time is set)")
	fs.DurationVar(&f.budget, "time", 0, "time budget (e.g. 30s, 10m); with --cases, whichever ends first")
	fs.StringVar(&f.dtypes, "dtype", "", "only these dtypes (comma list of bf16, fp16, fp32)")
	fs.IntVar(&f.widePct, "wide-pct", 2, "percent of random cases drawing H (and, independently, I) in the wide mode up to 320, for multi-tile GEMMs (resume with the same value)")
	fs.StringVar(&f.shard, "shard", "", "run shard i of n: i/n, or env / env/n to read the index from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX")
	fs.StringVar(&f.properties, "properties", "", "properties to check (comma list; default all: "+propertyNames()+")")
	fs.StringVar(&f.spec, "spec", "", "check exactly this one-line spec (a reproduce command) instead of generating cases")
	fs.BoolVar(&f.sharpness, "sharpness", false, "also measure the oracle's sharpness per result tensor, pooled over the run: unconstrained elements, wide ones (radius above a tenth of the tensor's RMS), median and p99 of radius ÷ |reference| (costs a float64 reference and an end-to-end enclosure per case)")
	fs.StringVar(&f.thenSpec, "then-spec", "", "with --spec A: check this spec B, which the history property runs right after A on the same backend instance (a history reproduce line)")
	fs.StringVar(&f.preset, "preset", "", "check exactly this model-preset case (id as nightly prints it, e.g. qwen3-30b-a3b/ep8/rank3/T4/seed1)")
	fs.IntVar(&f.start, "start", 0, "first case index")
	fs.BoolVar(&f.keepGoing, "keep-going", false, "continue after a failure (report every failing case)")
	fs.IntVar(&f.maxShrinks, "max-shrinks", 0, "shrink candidates to try per failure (default 400)")
	fs.BoolVar(&f.noShrink, "no-shrink", false, "do not shrink failures")
	fs.Float64Var(&f.sample, "sample", 0, "sampled check, for layers too large to check whole: judge this fraction (0, 1) of each expert group's rows, of the tokens and of each expert's weight-gradient rows in the stage-local checks (group edges and non-finite rows always; the sentinel tail, plan, exact contracts, poison scan, d_rw and bias gradients whole), each element within the full check's bound; the output states the fraction judged and the derived miss bound (docs/oracle.md §10). 0 (default) or 1: check everything")
	fs.Uint64Var(&f.sampleSeed, "sample-seed", 1, "with --sample: seed of the draw (the same seed, case and result judge the same units)")
	return cmd
}

func (a *app) runCheck(cmd *cobra.Command, f *checkFlags) error {
	faults, err := f.bf.faultSet()
	if err != nil {
		return err
	}
	ps, err := parseProperties("--properties", f.properties)
	if err != nil {
		return err
	}
	dts, err := parseDTypes(f.dtypes)
	if err != nil {
		return err
	}
	shard, shards, err := parseShard(f.shard, a.getenv)
	if err != nil {
		return err
	}
	if f.spec != "" && f.preset != "" {
		return usageErr("--spec and --preset are exclusive")
	}
	if f.cases < 0 || f.budget < 0 || f.start < 0 {
		return usageErr("--cases, --time and --start must not be negative")
	}
	if cmd.Flags().Changed("cases") && f.cases == 0 {
		return usageErr("--cases 0: want at least 1 (leave the flag out for 100, or use --time)")
	}
	if f.widePct < 0 || f.widePct > 100 {
		return usageErr("--wide-pct %d: a percentage, in [0, 100]", f.widePct)
	}
	if f.maxShrinks < 0 {
		return usageErr("--max-shrinks %d: must not be negative (leave the flag out for 400)", f.maxShrinks)
	}
	if !(f.sample >= 0 && f.sample <= 1) {
		return usageErr("--sample %v: a fraction in [0, 1] (0 or 1: check everything)", f.sample)
	}
	if cmd.Flags().Changed("sample-seed") && !cmd.Flags().Changed("sample") {
		return usageErr("--sample-seed needs --sample")
	}
	if n := max(f.cases, 1); f.start > math.MaxInt-n {
		return usageErr("--start %d with --cases %d: case indices past %d", f.start, f.cases, math.MaxInt)
	}
	var one props.Trial
	var presetWait func() (*moe.Case, error)
	// A sampled check through a worker holds about half the memory a value of a full check
	// does (presets.BytesPerElementSampledWorker): its one case may be larger.
	limits := a.caseLimits()
	if f.sample > 0 && f.sample < 1 && !backends.InProcess(f.bf.backend) {
		limits = a.caseLimitsAt(presets.BytesPerElementSampledWorker)
	}
	switch {
	case f.thenSpec != "" && f.spec == "":
		return usageErr("--then-spec needs --spec (the case run first)")
	case f.thenSpec != "":
		first, err := parseSpec(f.spec, limits)
		if err != nil {
			return err
		}
		then, err := parseSpec(f.thenSpec, limits)
		if err != nil {
			return err
		}
		if one, err = props.PairTrial(first, then); err != nil {
			return usageErr("--spec, --then-spec: %v", err)
		}
	case f.spec != "":
		spec, err := parseSpec(f.spec, limits)
		if err != nil {
			return err
		}
		if one, err = props.SpecTrial(spec); err != nil {
			return usageErr("--spec: %v", err)
		}
	case f.preset != "":
		// The case is built while the backend starts (a worker's start, CUDA's
		// initialisation), both taking seconds at a real layer's size.
		if presetWait, err = a.presetCaseAsync(f.preset, limits); err != nil {
			return err
		}
	}
	ct, err := f.bf.contractFlag()
	if err != nil {
		return err
	}
	if f.spec != "" || f.preset != "" {
		f.bf.maxCases = 1 // one case, one job: its in-process backend runs on every core
	}
	pool, b, err := f.bf.start(a)
	if err != nil {
		return err
	}
	defer pool.close()
	if presetWait != nil {
		c, err := presetWait()
		if err != nil {
			return err
		}
		one = props.Trial{Case: c, Poison: gpu.PoisonSignature, Origin: props.Origin{Kind: props.FromPreset, Preset: f.preset}}
	}
	if err := checkDTypes(b, dts); err != nil {
		return err
	}
	env := &props.Env{Backend: b, Faults: faults, NoStages: f.bf.noStages, Fit: capsFit(b, dts...), Contract: ct, New: f.bf.fresh(a, b), Trace: a.trace(),
		Sample: oracle.Sample{Fraction: f.sample, Seed: f.sampleSeed}}
	if f.spec != "" || f.preset != "" {
		return a.checkOne(env, f, ps, one)
	}
	return a.checkRandom(env, pool, f, ps, dts, shard, shards)
}

// repro is the reproduce command of a trial under the command's flags.
func repro(f *backendFlags, env *props.Env, t props.Trial) string {
	return props.Reproduce(t, props.How{Backend: f.backend, Faults: env.Faults, NoStages: f.noStages, Contract: contractRepro(env), Sample: sampleRepro(env.Sample)})
}

// sampleRepro is the --sample flags of a sampled check, "" for a full one.
func sampleRepro(s oracle.Sample) string {
	if !s.On() {
		return ""
	}
	return fmt.Sprintf("--sample %g --sample-seed %d", s.Fraction, s.Seed)
}

// checkOne runs the properties on one spec or preset case.
func (a *app) checkOne(env *props.Env, f *checkFlags, ps []props.Property, t props.Trial) error {
	t0 := time.Now()
	w := a.stdout
	fmt.Fprintf(w, "case: %s\ncontract: %s\n", t.Case.Config, env.JudgeContract())
	outs, failed, skipped, err := props.CheckTrialSkips(a.ctx, env, ps, t)
	if why, ok := gpu.IsUnsupported(err); ok {
		fmt.Fprintf(w, "UNSUPPORTED: not checked: %s\n", why.Reason)
		return usageErr("case outside the backend's capabilities: %s", why.Reason)
	}
	if err != nil {
		return internalErr(err)
	}
	for _, o := range outs {
		status := "pass"
		if !o.Pass {
			status = "FAIL"
		}
		fmt.Fprintf(w, "  %-4s %s\n", status, o.Property)
	}
	for _, k := range skipped {
		fmt.Fprintf(w, "  skip %s: %s\n", k.Property, k.Reason)
	}
	writeJudgements(w, env, ps)
	if f.sharpness {
		sp := newSharpPool(env.JudgeContract())
		sp.add(t.Case)
		if err := sp.write(w); err != nil {
			return internalErr(err)
		}
	}
	// a sampled judgement says what it judged; its pass never reads as a whole case's
	var sampled *oracle.SampleReport
	for _, o := range outs {
		if o.Verdict != nil && o.Verdict.Sample != nil {
			if sampled == nil {
				sampled = o.Verdict.Sample
				if err := sampled.Write(w, ""); err != nil {
					return internalErr(err)
				}
			}
		}
	}
	fmt.Fprintf(w, "%s in %.2fs\n", plural(len(outs), "property", "properties"), time.Since(t0).Seconds())
	if failed == nil {
		if sampled != nil {
			fmt.Fprintf(w, "PASS ON A SAMPLE (not the whole case): %s\n", sampled.Coverage())
			return nil
		}
		fmt.Fprintln(w, "PASS")
		return nil
	}
	fmt.Fprintf(w, "FAIL property %s: %s\n", failed.Property, failed.Message)
	writeFailures(w, failed, "  ")
	writeWorkerNotes(w, env.Backend, "")
	fmt.Fprintf(w, "reproduce: %s\n", repro(&f.bf, env, t))
	return errFailures
}

// writeJudgements prints, for each property the contract weakens, how it judges instead.
func writeJudgements(w io.Writer, env *props.Env, ps []props.Property) {
	if len(ps) == 0 {
		ps = props.All()
	}
	for _, p := range ps {
		if j := props.Judgement(p, env.JudgeContract()); j != "" {
			fmt.Fprintf(w, "note: %s: %s\n", p.Name, j)
		}
	}
}

// writeFailures prints a failing outcome's checks, one per line, with their locations (the
// message, printed before, is not repeated).
func writeFailures(w io.Writer, o *props.Outcome, indent string) {
	for _, l := range props.FailureLines(o, 12) {
		fmt.Fprintf(w, "%s%s\n", indent, l)
	}
}

// progress reports a random run: a bar on a terminal, a line every few seconds otherwise.
type progress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	last  time.Time
	t0    time.Time
	n     int
	fails int
}

func newProgress(w io.Writer, total int, budget time.Duration) *progress {
	p := &progress{w: w, t0: time.Now(), last: time.Now()}
	if isTerminal(w) {
		max := int64(total)
		if total == 0 {
			max = -1 // a time budget: a spinner with the count
		}
		p.bar = progressbar.NewOptions64(max, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("cases"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("case"),
			progressbar.OptionSetPredictTime(total > 0), progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
	}
	return p
}

func (p *progress) add(failed bool) {
	p.n++
	if failed {
		p.fails++
	}
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("cases (%d failing)", p.fails))
		_ = p.bar.Add(1)
		return
	}
	if time.Since(p.last) >= 5*time.Second {
		p.last = time.Now()
		el := time.Since(p.t0).Seconds()
		fmt.Fprintf(p.w, "  %d cases, %d failing, %.0fs, %.1f cases/s\n", p.n, p.fails, el, float64(p.n)/el)
	}
}

func (p *progress) done() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// checkRandom runs generated cases.
func (a *app) checkRandom(env *props.Env, pool *jobPool, f *checkFlags, ps []props.Property, dts []moe.DType, shard, shards int) error {
	w := a.stdout
	total := f.cases
	if total == 0 && f.budget == 0 {
		total = 100
	}
	names := "all"
	if len(ps) > 0 {
		var n []string
		for _, p := range ps {
			n = append(n, p.Name)
		}
		names = strings.Join(n, ",")
	}
	budget := ""
	if f.budget > 0 {
		budget = ", time " + f.budget.String()
	}
	fmt.Fprintf(w, "moecheck check: backend %s, seed %d, cases %d from index %d%s, shard %d/%d, properties %s, jobs %d", env.Backend.Name(), f.seed, total, f.start, budget, shard, shards, names, f.bf.jobs)
	if pool.devs != nil {
		fmt.Fprintf(w, ", devices %s", strings.Join(pool.devs, ","))
	}
	if !env.Faults.Empty() {
		fmt.Fprintf(w, ", faults %s", env.Faults)
	}
	fmt.Fprintf(w, ", contract %s\n", env.JudgeContract())
	type count struct {
		ran, failed, skipped int
		why                  string // the first skip's reason
	}
	counts := map[string]*count{}
	var order []string
	expected := total
	if shards > 1 && total > 0 {
		expected = (total + shards - 1) / shards
	}
	prog := newProgress(a.stderr, expected, f.budget)
	var sp *sharpPool
	if f.sharpness {
		sp = newSharpPool(env.JudgeContract())
	}
	rep, err := props.Run(a.ctx, props.RunConfig{Env: env, Properties: ps, Gen: props.GenOptions{DTypes: dts, WidePct: f.widePct}, Seed: f.seed,
		Cases: f.cases, Duration: f.budget, Start: f.start, Shard: shard, Shards: shards, NoShrink: f.noShrink,
		MaxShrinks: f.maxShrinks, KeepGoing: f.keepGoing, Jobs: f.bf.jobs, NewEnv: pool.env(env),
		OnCase: func(cr props.CaseResult) {
			if cr.Unsupported != "" {
				return // counted in rep.Unsupported
			}
			get := func(n string) *count {
				c := counts[n]
				if c == nil {
					c = &count{}
					counts[n] = c
					order = append(order, n)
				}
				return c
			}
			for _, o := range cr.Outcomes {
				c := get(o.Property)
				c.ran++
				if !o.Pass {
					c.failed++
				}
			}
			for _, k := range cr.Skipped {
				c := get(k.Property)
				c.skipped++
				if c.why == "" {
					c.why = k.Reason
				}
			}
			if sp != nil {
				sp.add(cr.Trial.Case)
			}
			prog.add(!cr.Pass)
		}})
	prog.done()
	if err != nil {
		if a.ctx.Err() != nil && rep != nil {
			return internalErr(fmt.Errorf("interrupted after %d cases (continue with --start %d)", rep.Cases, rep.Next))
		}
		return internalErr(err)
	}
	el := rep.Elapsed.Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(rep.Cases) / el
	}
	fmt.Fprintf(w, "\n%-8s %-9s %-9s %-8s\n", "cases", "failures", "time", "cases/s")
	fmt.Fprintf(w, "%-8d %-9d %-9s %-8.1f\n", rep.Cases, len(rep.Failures), rep.Elapsed.Round(time.Millisecond), rate)
	if len(order) > 0 {
		// a skipped column only when a property was skipped (outside what the backend can
		// do, e.g. history without a fresh instance of a worker backend): the table is
		// otherwise what it always was
		skips := false
		for _, n := range order {
			skips = skips || counts[n].skipped > 0
		}
		if skips {
			fmt.Fprintf(w, "\n%-24s %8s %8s %8s\n", "property", "ran", "failed", "skipped")
		} else {
			fmt.Fprintf(w, "\n%-24s %8s %8s\n", "property", "ran", "failed")
		}
		for _, n := range order {
			if skips {
				fmt.Fprintf(w, "%-24s %8d %8d %8d\n", n, counts[n].ran, counts[n].failed, counts[n].skipped)
			} else {
				fmt.Fprintf(w, "%-24s %8d %8d\n", n, counts[n].ran, counts[n].failed)
			}
		}
		for _, n := range order {
			if c := counts[n]; c.skipped > 0 && c.why != "" {
				fmt.Fprintf(w, "note: %s skipped on %d case(s), e.g.: %s\n", n, c.skipped, c.why)
			}
		}
	}
	writeJudgements(w, env, ps)
	if env.Sample.On() {
		fmt.Fprintf(w, "note: sampled check (--sample %g --sample-seed %d): the stage-local judgements covered a seeded fraction of each tensor's rows, tokens and weight-gradient rows (each element within the full check's bound); a pass covers only what was judged (docs/oracle.md §10)\n", env.Sample.Fraction, env.Sample.Seed)
	}
	if sp != nil {
		if err := sp.write(w); err != nil {
			return internalErr(err)
		}
	}
	if rep.Unsupported > 0 {
		fmt.Fprintf(w, "unsupported cases: %d (outside the backend's capabilities; not checked)\n", rep.Unsupported)
	}
	if note := pool.workerNote(); note != "" {
		fmt.Fprintln(w, note)
	}
	fmt.Fprintf(w, "next case index: %d\n", rep.Next)
	if len(rep.Failures) == 0 {
		if env.Sample.On() && !env.NoStages {
			fmt.Fprintf(w, "PASS ON A SAMPLE (not the whole cases: --sample %g --sample-seed %d, see the note above)\n", env.Sample.Fraction, env.Sample.Seed)
			return nil
		}
		fmt.Fprintln(w, "PASS")
		return nil
	}
	for _, cr := range rep.Failures {
		s, tr, out := cr.Spec, cr.Trial, cr.Failed
		fmt.Fprintf(w, "\nFAIL case %d: property %s\n", cr.Index, out.Property)
		fmt.Fprintf(w, "  spec:   %s\n", cr.Spec)
		if sh := cr.Shrunk; sh != nil && sh.Outcome != nil {
			s, tr, out = sh.Spec, sh.Trial, sh.Outcome
			fmt.Fprintf(w, "  shrunk: %s (%d steps, %d tries, %.2fs)\n", sh.Spec, sh.Steps, sh.Tries, sh.Elapsed.Seconds())
			if c, err := sh.Spec.Build(); err == nil {
				fmt.Fprintf(w, "  case:   %s\n", c.Config)
			}
		}
		fmt.Fprintf(w, "  %s\n", out.Message)
		writeFailures(w, out, "  ")
		writeWorkerNotes(w, env.Backend, "  ")
		fmt.Fprintf(w, "  reproduce: %s\n", repro(&f.bf, env, tr))
		fmt.Fprintf(w, "  triage:    moecheck triage --backend %s --spec '%s'", quote(f.bf.backend), s)
		if !env.Faults.Empty() {
			fmt.Fprintf(w, " --faults %s", env.Faults)
		}
		if c := contractRepro(env); c != "" {
			fmt.Fprintf(w, " --contract %s", c)
		}
		fmt.Fprintln(w)
	}
	return errFailures
}
