package main

import (
	"errors"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/backends"
	"github.com/moecheck/moecheck/internal/nightly"
	"github.com/moecheck/moecheck/internal/presets"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

type nightlyFlags struct {
	bf           backendFlags
	sharpness    bool
	results      string
	resume       bool
	junit        string
	artifacts    string
	noArtifacts  bool
	corpus       string
	presets      string
	presetT      int
	presetMem    int
	presetScale  int
	presetProps  string
	presetSeed   uint64
	presetDType  string
	presetDevice string
	seed         uint64
	cases        int
	budget       time.Duration
	dtypes       string
	widePct      int
	properties   string
	shard        string
	maxShrinks   int
	sample       float64
	sampleSeed   uint64
}

func (a *app) nightlyCmd() *cobra.Command {
	f := &nightlyFlags{}
	cmd := &cobra.Command{
		Use:   "nightly",
		Short: "Corpus + model presets + a random budget against a backend, with resumable JSON Lines results",
		Long: `nightly runs, in this order: every corpus case (--corpus, default corpus/seeds and
corpus/regressions), one case per model preset at its real H, I, experts and top-k on one EP rank
(--presets), and random property cases for the budget (--cases and/or --time).

Every result is appended to --results as one JSON line as soon as it is known (flushed and
fsynced), so a run that is killed loses at most the case in flight; --resume continues it:
recorded items are skipped and the random stream goes on at the next case index with what is
left of the budget. A case the backend crashes on (or hangs, or runs out of memory for) is a
recorded failure and the run goes on. For each failure an artifact with the element maps of the
worst stage tensors is written to artifacts/<id>.json next to the results; 'moecheck report'
plots them. --junit writes JUnit XML for CI.

Presets on the CPU path (--backend sim): real shapes are heavy. T is picked from the budget
(4 tokens per rank below an hour, 8 below four hours, 16 beyond; --preset-tokens overrides),
the EP world size is raised until one rank's case fits --preset-mem (fewer local experts, same
H, I, experts and top-k), and only the 'matches' property runs (--preset-properties), under
signature poison. A preset that does not fit even with one local expert is recorded as skipped.

Exit status: 0 every item passed, 1 failures, 2 usage, 3 internal or device error, or the run
was interrupted (Ctrl-C): resume it with --resume.`,
		Example: `  moecheck nightly --time 30m --results out/results.jsonl --junit out/junit.xml
  moecheck nightly --results out/results.jsonl --resume            # after a kill or Ctrl-C
  moecheck nightly --backend cuda --time 8h --shard env --results out/shard-$SLURM_ARRAY_TASK_ID.jsonl
  moecheck nightly --presets qwen3-30b-a3b,gpt-oss-20b --cases 200 --faults no-mask-up-dgrad
  moecheck report out/results.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runNightly(cmd, f) },
	}
	fs := cmd.Flags()
	f.bf.register(fs, true)
	f.bf.registerJobs(fs)
	fs.StringVar(&f.results, "results", filepath.Join("moecheck-out", "results.jsonl"), "JSON Lines results file (appended line by line)")
	fs.BoolVar(&f.resume, "resume", false, "continue the run recorded in --results: its recorded flags are restored; a flag given with another value is refused")
	fs.StringVar(&f.junit, "junit", "", "also write JUnit XML to this file")
	fs.StringVar(&f.artifacts, "artifacts", "", "directory for per-failure artifacts (default: artifacts/ next to --results)")
	fs.BoolVar(&f.noArtifacts, "no-artifacts", false, "do not write per-failure artifacts")
	fs.StringVar(&f.corpus, "corpus", strings.Join([]string{filepath.Join("corpus", "seeds"), filepath.Join("corpus", "regressions")}, ","), "corpus files or directories (comma list; missing directories are skipped; \"none\" for none)")
	fs.StringVar(&f.presets, "presets", "all", "model presets (comma list of "+strings.Join(presets.Names(), ", ")+"; all; none)")
	fs.IntVar(&f.presetT, "preset-tokens", 0, "tokens per rank for preset cases (default: picked from the backend and --time)")
	fs.IntVar(&f.presetMem, "preset-mem", 8192, "memory budget in MiB for one preset case on a CPU backend (raises the EP size to fit)")
	fs.IntVar(&f.presetScale, "preset-scale", 1, "divide preset H and I by this factor (smoke runs of the machinery; 1 = real shapes)")
	fs.StringVar(&f.presetProps, "preset-properties", "matches", "properties for preset cases (comma list or all)")
	fs.Uint64Var(&f.presetSeed, "preset-seed", 1, "seed of the preset cases (also picks the EP rank)")
	fs.StringVar(&f.presetDType, "preset-dtype", "bf16", "dtype of the preset cases")
	fs.StringVar(&f.presetDevice, "preset-device", "auto", "size preset cases for a cpu or gpu backend (auto: gpu when the backend command mentions cuda)")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the random case stream (on --resume: the recorded one unless given)")
	fs.IntVar(&f.cases, "cases", 0, "random case indices to visit over the whole run")
	fs.DurationVar(&f.budget, "time", 0, "time budget of the random cases over the whole run (e.g. 30m, 8h)")
	fs.StringVar(&f.dtypes, "dtype", "", "random cases: only these dtypes (comma list)")
	fs.IntVar(&f.widePct, "wide-pct", 2, "percent of random cases drawing H (and, independently, I) in the wide mode up to 320, for multi-tile GEMMs (resume with the same value)")
	fs.StringVar(&f.properties, "properties", "", "properties for corpus and random cases (comma list; default all)")
	fs.StringVar(&f.shard, "shard", "", "random cases: shard i/n, or env / env/n (SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)")
	fs.IntVar(&f.maxShrinks, "max-shrinks", 0, "shrink candidates per failure (default 400)")
	fs.Float64Var(&f.sample, "sample", 0, "sampled check, as check --sample: every case's stage-local judgements cover this fraction (0, 1) of each tensor's rows, tokens and weight-gradient rows (group edges and non-finite rows always), each element within the full check's bound; case records and the report say a pass was judged on a sample, with the fraction and the miss bound per tensor (docs/oracle.md §10). 0 (default) or 1: check everything")
	fs.Uint64Var(&f.sampleSeed, "sample-seed", 1, "with --sample: seed of the draw")
	fs.BoolVar(&f.sharpness, "sharpness", false, "pool the oracle's sharpness over this invocation's random cases into the end record (and the report); costs a float64 reference and an end-to-end enclosure per case")
	return cmd
}

// runFlags are the nightly flags that define a run: recorded in its start records, restored
// by a bare --resume, and refused when given with another value on resume.
var runFlags = []string{"backend", "contract", "faults", "no-stages", "seed", "cases", "time", "dtype", "wide-pct", "properties",
	"shard", "corpus", "presets", "preset-tokens", "preset-mem", "preset-scale", "preset-properties", "preset-seed",
	"preset-dtype", "preset-device", "max-shrinks", "sample", "sample-seed"}

// restoreFlags applies the flags recorded in the first start record of a results file: a
// flag not given on this command line takes its recorded value; one given with another value
// is a usage error naming every difference. A file without recorded flags (older moecheck)
// keeps only the seed rule.
func restoreFlags(cmd *cobra.Command, path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return nil // nothing recorded yet: a fresh run
	}
	defer fh.Close()
	recs, _, _, err := nightly.ReadResults(fh)
	if err != nil {
		return nil // openResults reports what is wrong with the file
	}
	var rec map[string]string
	var seed *uint64
	for _, r := range recs {
		if r.Type == nightly.TypeStart && r.Run != nil {
			rec, seed = r.Run.Flags, &r.Run.Seed
			break
		}
	}
	fl := cmd.Flags()
	if rec == nil {
		if seed != nil && !fl.Changed("seed") {
			return fl.Set("seed", fmt.Sprint(*seed))
		}
		return nil
	}
	var diff []string
	for _, name := range runFlags {
		v, ok := rec[name]
		f := fl.Lookup(name)
		if !ok || f == nil {
			continue
		}
		if f.Changed {
			if f.Value.String() != v {
				diff = append(diff, fmt.Sprintf("--%s %s (recorded: %s)", name, quote(f.Value.String()), quote(v)))
			}
			continue
		}
		if v == f.DefValue {
			continue // the default: setting it would mark the flag as given (--cases 0 is refused)
		}
		if err := fl.Set(name, v); err != nil {
			return usageErr("%s: recorded --%s %q: %v", path, name, v, err)
		}
	}
	if len(diff) > 0 {
		return usageErr("%s was recorded with other settings: %s; resume with the recorded ones (leave these flags out) or choose a new results file", path, strings.Join(diff, ", "))
	}
	return nil
}

func (a *app) runNightly(cmd *cobra.Command, f *nightlyFlags) error {
	if f.resume {
		if err := restoreFlags(cmd, f.results); err != nil {
			return err
		}
	}
	flags := map[string]string{}
	for _, name := range runFlags {
		if fl := cmd.Flags().Lookup(name); fl != nil {
			flags[name] = fl.Value.String()
		}
	}
	faults, err := f.bf.faultSet()
	if err != nil {
		return err
	}
	ct, err := f.bf.contractFlag()
	if err != nil {
		return err
	}
	ps, err := parseProperties("--properties", f.properties)
	if err != nil {
		return err
	}
	pps, err := parseProperties("--preset-properties", f.presetProps)
	if err != nil {
		return err
	}
	dts, err := parseDTypes(f.dtypes)
	if err != nil {
		return err
	}
	pdt, err := moe.ParseDType(f.presetDType)
	if err != nil {
		return usageErr("--preset-dtype: %v", err)
	}
	shard, shards, err := parseShard(f.shard, a.getenv)
	if err != nil {
		return err
	}
	pres, err := presets.Select(f.presets)
	if err != nil {
		return usageErr("--presets: %v", err)
	}
	if cmd.Flags().Changed("cases") && f.cases == 0 {
		return usageErr("--cases 0: want at least 1 (leave the flag out for no random cases)")
	}
	if f.widePct < 0 || f.widePct > 100 {
		return usageErr("--wide-pct %d: a percentage, in [0, 100]", f.widePct)
	}
	if f.maxShrinks < 0 {
		return usageErr("--max-shrinks %d: must not be negative (leave the flag out for 400)", f.maxShrinks)
	}
	if f.cases < 0 || f.budget < 0 || f.presetT < 0 || f.presetMem <= 0 || f.presetScale < 1 {
		return usageErr("--cases, --time and --preset-tokens must not be negative, --preset-mem and --preset-scale must be positive")
	}
	if !(f.sample >= 0 && f.sample <= 1) {
		return usageErr("--sample %v: a fraction in [0, 1] (0 or 1: check everything)", f.sample)
	}
	if cmd.Flags().Changed("sample-seed") && !cmd.Flags().Changed("sample") && !f.resume {
		return usageErr("--sample-seed needs --sample")
	}
	sample := oracle.Sample{Fraction: f.sample, Seed: f.sampleSeed}
	seed := f.seed
	// corpus items
	var items []nightly.Item
	if f.corpus != "none" && f.corpus != "" {
		var paths []string
		for _, p := range strings.Split(f.corpus, ",") {
			if _, err := os.Stat(p); err != nil {
				if cmd.Flags().Changed("corpus") {
					return usageErr("--corpus %s: %v (give existing files or directories, or none)", p, err)
				}
				fmt.Fprintf(a.stderr, "moecheck nightly: corpus %s: not found, skipped\n", p)
				continue
			}
			paths = append(paths, p)
		}
		cs, bad, err := loadCorpusFiles(paths, a.caseLimits(), true)
		if err != nil {
			return err
		}
		// a file that does not parse is a recorded failure (file and line in the message):
		// one bad regression file must not stop an unattended run
		for _, b := range bad {
			items = append(items, nightly.Item{ID: "corpus/" + corpus.NameOf(b.path), Kind: nightly.KindCorpus, Source: b.path,
				Fail: "unreadable corpus file: " + b.err.Error()})
		}
		for _, c := range cs {
			c := c
			items = append(items, nightly.Item{ID: "corpus/" + c.Name, Kind: nightly.KindCorpus, Source: c.Path,
				Build: func() (*moe.Case, error) { return c.Case, nil }, Poison: c.Trial.Poison, Origin: c.Trial.Origin,
				Repro: props.Reproduce(c.Trial, props.How{Backend: f.bf.backend, Faults: faults, Contract: f.bf.contract, Sample: sampleRepro(sample)})})
		}
	}
	// preset items
	kind := f.presetDevice
	if kind == "auto" {
		kind = presets.CPU
		if argv, _ := backends.Command(f.bf.backend); strings.Contains(strings.Join(argv, " "), "cuda") {
			kind = presets.GPU
		}
	}
	if kind != presets.CPU && kind != presets.GPU {
		return usageErr("--preset-device %q: want auto, cpu or gpu", f.presetDevice)
	}
	for _, p := range pres {
		it, err := presetItem(p, kind, f, pdt, pps, faults, sample)
		if err != nil {
			return err
		}
		items = append(items, it)
	}
	pool, b, err := f.bf.start(a)
	if err != nil {
		return err
	}
	defer pool.close()
	o := nightly.Options{Contract: ct, New: f.bf.fresh(a, b), Sharpness: f.sharpness, Backend: b, Jobs: f.bf.jobs, NewBackend: pool.openUnowned, BackendFlag: f.bf.backend, Faults: faults, NoStages: f.bf.noStages, Fit: capsFit(b), Items: items,
		ItemProperties: ps, Properties: ps, Seed: seed, Cases: f.cases, Duration: f.budget, Gen: props.GenOptions{DTypes: dts, WidePct: f.widePct},
		Shard: shard, Shards: shards, MaxShrinks: f.maxShrinks, Sample: sample, Results: f.results, ArtifactDir: f.artifacts,
		NoArtifacts: f.noArtifacts, Resume: f.resume, Now: a.now, Progress: a.stdout, Flags: flags}
	fmt.Fprintf(a.stdout, "moecheck nightly: backend %s, %d corpus case(s), %d preset(s), random: seed %d", b.Name(), countKind(items, nightly.KindCorpus), len(pres), seed)
	if f.cases > 0 {
		fmt.Fprintf(a.stdout, ", %d case indices", f.cases)
	}
	if f.budget > 0 {
		fmt.Fprintf(a.stdout, ", %s", f.budget)
	}
	if f.cases == 0 && f.budget == 0 {
		fmt.Fprint(a.stdout, ", none (no --cases or --time)")
	}
	if sample.On() {
		fmt.Fprintf(a.stdout, ", sampled check (--sample %g --sample-seed %d)", sample.Fraction, sample.Seed)
	}
	if !faults.Empty() {
		fmt.Fprintf(a.stdout, ", faults %s", faults)
	}
	fmt.Fprintf(a.stdout, "\nresults: %s\n", f.results)
	out, err := nightly.Run(a.ctx, o)
	if err != nil {
		var ue *nightly.UsageError
		switch {
		case errors.As(err, &ue):
			return usageErr("%v", ue.Err)
		case errors.Is(err, nightly.ErrInterrupted):
			fmt.Fprintf(a.stdout, "\ninterrupted: %d item(s) recorded in %s\nresume: moecheck nightly --resume --results %s (the run's flags are restored from the file)\n", out.Summary.Total, f.results, quote(f.results))
			return &exitError{code: exitInternal}
		}
		return internalErr(err)
	}
	if err := a.junit(f); err != nil {
		return err
	}
	s := out.Summary
	fmt.Fprintf(a.stdout, "\n%-8s %6s %6s %6s %6s\n", "kind", "items", "pass", "fail", "skip")
	for _, k := range []string{nightly.KindCorpus, nightly.KindPreset, nightly.KindRandom} {
		if c := s.ByKind[k]; c != nil {
			fmt.Fprintf(a.stdout, "%-8s %6d %6d %6d %6d\n", k, c.Total, c.Pass, c.Fail, c.Skip)
		}
	}
	fmt.Fprintf(a.stdout, "%-8s %6d %6d %6d %6d\n", "all", s.Total, s.Pass, s.Fail, s.Skip)
	if out.Skipped > 0 {
		fmt.Fprintf(a.stdout, "(%d item(s) were already recorded and skipped)\n", out.Skipped)
	}
	fmt.Fprintf(a.stdout, "next random case index: %d\nreport: moecheck report %s\n", out.RandomNext, quote(f.results))
	if s.Fail > 0 {
		fmt.Fprintf(a.stdout, "FAIL: %s\n", strings.Join(s.Failed, ", "))
		return errFailures
	}
	if s.Sampled > 0 { // a pass judged on a sample says so; judged whole, a plain PASS
		fmt.Fprintf(a.stdout, "PASS ON A SAMPLE (not the whole cases: --sample %g --sample-seed %d; each record's \"sample\" has the miss bound per tensor)\n", sample.Fraction, sample.Seed)
		return nil
	}
	fmt.Fprintln(a.stdout, "PASS")
	return nil
}

func countKind(items []nightly.Item, kind string) int {
	n := 0
	for _, it := range items {
		if it.Kind == kind {
			n++
		}
	}
	return n
}

// presetItem makes the nightly item of one preset.
func presetItem(p presets.Preset, kind string, f *nightlyFlags, dt moe.DType, ps []props.Property, faults fault.Set, sample oracle.Sample) (nightly.Item, error) {
	T := f.presetT
	if T == 0 {
		T = presets.Tokens(p, kind, f.budget)
	}
	o := presets.CaseOptions{T: T, DType: dt, Seed: f.presetSeed, Scale: f.presetScale}
	// A case that is invalid at the preset's own EP size (too many tokens, ...) is a usage
	// error, not a skip for want of memory.
	if _, err := p.Config(o); err != nil {
		return nightly.Item{}, usageErr("--preset-tokens %d for %s: %v", T, p.Name, err)
	}
	if kind == presets.CPU {
		ep, err := p.FitEP(o, int64(f.presetMem)<<20)
		if err != nil {
			o.EP = p.EP
			o.Rank = int(f.presetSeed % uint64(p.EP))
			return nightly.Item{ID: "preset/" + p.ID(o), Kind: nightly.KindPreset, Source: p.String(), Skip: err.Error()}, nil
		}
		o.EP = ep
	} else {
		o.EP = p.EP
	}
	o.Rank = int(f.presetSeed % uint64(o.EP)) // the seed picks the rank: rank > 0 tests the EP offset
	if len(ps) == 0 {
		m, err := props.ByName("matches")
		if err != nil {
			return nightly.Item{ID: "preset/" + p.ID(o), Kind: nightly.KindPreset, Source: p.String(), Fail: err.Error()}, nil
		}
		ps = []props.Property{m}
	}
	id := p.ID(o)
	origin := props.Origin{Kind: props.FromPreset, Preset: id}
	return nightly.Item{ID: "preset/" + id, Kind: nightly.KindPreset, Source: p.String(),
		Build: func() (*moe.Case, error) { return p.Case(o) }, Poison: gpu.PoisonSignature, Origin: origin, Properties: ps,
		Repro: props.Reproduce(props.Trial{Origin: origin}, props.How{Backend: f.bf.backend, Faults: faults, Properties: propList(ps), Contract: f.bf.contract, Sample: sampleRepro(sample)})}, nil
}

func propList(ps []props.Property) string {
	var n []string
	for _, p := range ps {
		n = append(n, p.Name)
	}
	return strings.Join(n, ",")
}

// junit writes --junit from the results file.
func (a *app) junit(f *nightlyFlags) error {
	if f.junit == "" {
		return nil
	}
	fh, err := os.Open(f.results)
	if err != nil {
		return internalErr(err)
	}
	defer fh.Close()
	recs, _, _, err := nightly.ReadResults(fh)
	if err != nil {
		return internalErr(err)
	}
	host, _ := os.Hostname()
	if err := nightly.WriteFile(f.junit, func(w io.Writer) error { return nightly.WriteJUnit(w, recs, nightly.JUnitOptions{Hostname: host}) }); err != nil {
		return internalErr(err)
	}
	fmt.Fprintf(a.stdout, "junit: %s\n", f.junit)
	return nil
}
