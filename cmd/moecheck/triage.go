package main

import (
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/presets"
	"github.com/moecheck/moecheck/internal/triage"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

type triageFlags struct {
	bf         backendFlags
	spec       string
	preset     string
	noSave     bool
	dir        string
	name       string
	top        int
	noShrink   bool
	candidates string
}

func (a *app) triageCmd() *cobra.Command {
	f := &triageFlags{}
	cmd := &cobra.Command{
		Use:   "triage [CASE-FILE]",
		Short: "Name the first failing stage of a case, where it fails, and the most similar known fault class",
		Long: `triage explains one failing case: a corpus file, a --spec or a --preset case. It writes into
the current directory: a failing case is saved as a corpus file under --dir (default
corpus/regressions, relative to where you run it); --no-save writes nothing. A failing case is
shrunk first: a spec by its generator's fields (fewer tokens, experts, smaller sizes, simpler
modes), a file or preset case by removing tokens while the same property still fails.

It runs the backend with stage capture under NaN and per-buffer signature poison (and once more
under NaN and under zero fill), judges every run with the oracle and names the first stage in
path order whose values go wrong or non-finite:

  routing plan, xs, h1, act, h2, o, y, d_o, d_rw, d_h2, d_act, dW2/dB2, d_h1, d_xs, dW1/dB1, dX

with the worst element's token, slot, expert, sorted row, whether it is in the sentinel tail,
and the buffer whose poison survived. Then it runs gpu/sim on the same case with each catalog
fault switched on, computes each fault's failure signature (the set of (check, tensor) pairs
and the first failing stage) and ranks the faults by similarity to the observed signature: the
best matches, with the real bugs they reproduce, are the suggested fault classes.

The case is saved to corpus/regressions (unless --no-save; a corpus file only when shrinking
made it smaller) and a reproduce command printed.
Exit status 1 when the case fails, 0 when nothing is wrong.`,
		Example: `  moecheck triage corpus/regressions/fuzz-0661b5f17dd5d30c.case --no-save
  moecheck triage --spec 'T=4 H=8 I=8 E=3 K=3 world=2 rank=1 global=1 dtype=bf16 bias=1 seed=5' --faults no-mask-up-dgrad
  moecheck triage --backend cuda --preset qwen3-30b-a3b/ep8/rank3/T4/seed1 --no-save`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runTriage(f, args) },
	}
	fs := cmd.Flags()
	f.bf.register(fs, true)
	fs.StringVar(&f.spec, "spec", "", "triage this one-line spec (shrunk first)")
	fs.StringVar(&f.preset, "preset", "", "triage this model-preset case id (e.g. qwen3-30b-a3b/ep8/rank3/T4/seed1)")
	fs.BoolVar(&f.noSave, "no-save", false, "do not save the case to the corpus")
	fs.StringVar(&f.dir, "dir", filepath.Join("corpus", "regressions"), "corpus directory to save the case in")
	fs.StringVar(&f.name, "name", "", "name of the saved case (default derived from the case)")
	fs.IntVar(&f.top, "top", 3, "matches to print")
	fs.BoolVar(&f.noShrink, "no-shrink", false, "triage the case as given, without shrinking")
	fs.StringVar(&f.candidates, "candidates", "", "faults of the differential diagnosis (comma list; default the whole catalog)")
	return cmd
}

func (a *app) runTriage(f *triageFlags, args []string) error {
	n := len(args)
	if f.spec != "" {
		n++
	}
	if f.preset != "" {
		n++
	}
	if n != 1 {
		return usageErr("triage needs exactly one of a case file, --spec or --preset")
	}
	faults, err := f.bf.faultSet()
	if err != nil {
		return err
	}
	cands, err := fault.ParseSet(f.candidates)
	if err != nil {
		return usageErr("--candidates: %v", err)
	}
	if f.bf.noStages {
		return usageErr("triage needs stages: drop --no-stages")
	}
	if f.noSave {
		fmt.Fprintln(a.stdout, "triage: --no-save: nothing is written")
	} else {
		abs, _ := filepath.Abs(f.dir)
		fmt.Fprintf(a.stdout, "triage: a failing case is saved under %s (--no-save to write nothing)\n", abs)
	}
	var (
		spec  props.Spec
		c     *moe.Case
		entry *corpusCase
	)
	switch {
	case f.spec != "":
		if spec, err = parseSpec(f.spec, a.caseLimits()); err != nil {
			return err
		}
	case f.preset != "":
		var err error
		if c, err = a.presetCase(f.preset); err != nil {
			return err
		}
	default:
		cs, err := loadCorpus(args, a.caseLimits())
		if err != nil {
			return err
		}
		if len(cs) != 1 {
			return usageErr("%s holds %d cases; triage takes one", args[0], len(cs))
		}
		entry = &cs[0]
		c = entry.Case
	}
	if f.top < 1 {
		return usageErr("--top %d: want at least 1", f.top)
	}
	f.bf.triage = true
	ct, err := f.bf.contractFlag()
	if err != nil {
		return err
	}
	b, err := f.bf.open(a)
	if err != nil {
		return err
	}
	defer a.closeBackend(b)
	o := triage.Options{Backend: b, Faults: faults, Candidates: cands.List(), Top: f.top, NoShrink: f.noShrink, Contract: ct, New: f.bf.fresh(a, b)}
	if f.spec != "" {
		// Shrink inside the worker's capabilities, keeping the spec's dtype (a PyTorch path's
		// rounding in another dtype is another question).
		o.Fit = capsFit(b, spec.Config().DType)
	}
	var rep *triage.Report
	if c == nil {
		rep, err = triage.Spec(a.ctx, spec, o)
	} else {
		tr := props.Trial{Case: c, Poison: gpu.PoisonSignature, Origin: props.Origin{Kind: props.FromPreset, Preset: f.preset}}
		if entry != nil {
			tr = entry.Trial
		}
		rep, err = triage.Tokens(a.ctx, tr, o)
	}
	if err != nil {
		return internalErr(err)
	}
	w := a.stdout
	if err := rep.Write(w); err != nil {
		return internalErr(err)
	}
	if !rep.Failed() {
		return nil
	}
	// save and reproduce
	var path string
	tokensShrunk := rep.TokensShrunk != nil && rep.TokensShrunk.Steps > 0
	switch {
	case entry != nil && !tokensShrunk:
		path = entry.Path
		fmt.Fprintf(w, "\nthe case is already in the corpus: %s\n", path)
	case !f.noSave:
		name := f.name
		if name == "" {
			name = "triage-" + caseName(rep)
		}
		prov := []string{"saved by moecheck triage", "first stage: " + rep.Observed.FirstStage.String() + " at " + rep.Observed.First.Worst.String()}
		if best := rep.Best(); len(best) > 0 {
			var n []string
			for _, m := range best {
				n = append(n, m.Fault.Name)
			}
			prov = append(prov, "suggested fault class: "+strings.Join(n, ", "))
		}
		if rep.Spec != nil {
			prov = append(prov, "spec: "+rep.Spec.String())
		}
		if f.preset != "" {
			prov = append(prov, "preset case: "+f.preset)
		}
		if entry != nil {
			prov = append(prov, "shrunk from: "+entry.Path)
		}
		if tokensShrunk {
			prov = append(prov, fmt.Sprintf("tokens removed: T=%d of T=%d kept", rep.Case.T, rep.OriginalT))
		}
		prov = append(prov, "backend: "+f.bf.backend)
		if !faults.Empty() {
			prov = append(prov, "faults: "+faults.String())
		}
		e := &corpus.Entry{Name: name, Comments: prov, Case: rep.Case, Poisons: []gpu.Poison{gpu.PoisonNaN, gpu.PoisonSignature}, Faults: faults}
		if rep.Spec != nil {
			e.Data = specData(*rep.Spec)
		}
		if f.preset != "" && !tokensShrunk { // a token-shrunk case is no longer the generated one
			if _, o, err := presets.ParseID(f.preset); err == nil {
				e.Data = &corpus.DataSpec{Seed: o.Seed, Mode: o.Data}
			}
		}
		if rep.Property != "" {
			e.Properties = []string{rep.Property}
		}
		var saved bool
		if path, saved, err = saveEntry(f.dir, e); err != nil {
			return err
		}
		if saved {
			fmt.Fprintf(w, "\nsaved: %s\n", path)
		} else {
			fmt.Fprintf(w, "\nalready saved: %s\n", path)
		}
	}
	writeWorkerNotes(w, b, "")
	var origin props.Origin
	switch {
	case rep.Spec != nil:
		origin = props.Origin{Kind: props.FromSpec, Spec: *rep.Spec}
	case path != "":
		origin = props.Origin{Kind: props.FromFile, Path: path}
	case f.preset != "":
		origin = props.Origin{Kind: props.FromPreset, Preset: f.preset}
	}
	if origin.Kind != props.FromNowhere {
		fmt.Fprintf(w, "reproduce: %s\n", repro(&f.bf, &props.Env{Faults: faults}, props.Trial{Origin: origin}))
	}
	return errFailures
}

func faultFlag(f fault.Set) string {
	if f.Empty() {
		return ""
	}
	return " --faults " + f.String()
}

// caseName derives a file name from the case's shape and a hash of its spec or data.
func caseName(r *triage.Report) string {
	c := r.Case
	stage := strings.NewReplacer("/", "-", " ", "-", "(", "", ")", "").Replace(r.Observed.FirstStage.String())
	return fmt.Sprintf("%s-T%dH%dI%dE%dK%d-%s", stage, c.T, c.H, c.I, c.E, c.K, shortHash(c))
}
