package main

import (
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/props"
)

type mutantsFlags struct {
	bf     backendFlags
	cases  int
	budget time.Duration
	seed   uint64
	dtypes string
}

func (a *app) mutantsCmd() *cobra.Command {
	f := &mutantsFlags{}
	var catalog []string
	for _, fi := range fault.Catalog() {
		catalog = append(catalog, fmt.Sprintf("  %-21s %s (%s)", fi.Name, fi.Doc, fi.Provenance))
	}
	cmd := &cobra.Command{
		Use:   "mutants",
		Short: "Mutation test: switch on each catalog fault and check that the property suite catches it",
		Long: `mutants runs the property suite against the backend with one catalog fault switched on at a
time and reports, per fault, whether it was caught, by which property, after how many cases
and how much time, and the shrunk failing case (T, E, K, H, I). A fault that is not caught
means the suite has a blind spot: exit status 1.

--no-stages runs the suite end to end only (as for a black-box backend), which shows what the
stage-local checks add.

The catalog:
` + strings.Join(catalog, "\n"),
		Example: `  moecheck mutants
  moecheck mutants --faults no-mask-up-dgrad,accum-in-dtype --time 10s
  moecheck mutants --no-stages --cases 2000
  moecheck mutants --backend cuda`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runMutants(f) },
	}
	fs := cmd.Flags()
	f.bf.register(fs, true)
	f.bf.registerJobs(fs)
	fs.Lookup("faults").Usage = "faults to test (comma list; default the whole catalog)"
	fs.IntVar(&f.cases, "cases", props.DefaultMutantCases, "case budget per fault")
	fs.DurationVar(&f.budget, "time", props.DefaultMutantTimeout, "time budget per fault")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the case stream")
	fs.StringVar(&f.dtypes, "dtype", "", "only these dtypes (comma list)")
	return cmd
}

func (a *app) runMutants(f *mutantsFlags) error {
	set, err := f.bf.faultSet()
	if err != nil {
		return err
	}
	dts, err := parseDTypes(f.dtypes)
	if err != nil {
		return err
	}
	if f.cases <= 0 || f.budget <= 0 {
		return usageErr("--cases and --time must be positive")
	}
	ct, err := f.bf.contractFlag()
	if err != nil {
		return err
	}
	pool, b, err := f.bf.start(a)
	if err != nil {
		return err
	}
	defer pool.close()
	var be gpu.Backend = b
	mode := "with stages"
	wrap := func(b gpu.Backend) gpu.Backend { return b }
	if f.bf.noStages {
		wrap, mode = func(b gpu.Backend) gpu.Backend { return noStages{b} }, "end to end only (--no-stages)"
		be = wrap(b)
	}
	newBackend := func(k int) (gpu.Backend, error) {
		b, err := pool.open(k)
		if err != nil {
			return nil, err
		}
		return wrap(b), nil
	}
	w := a.stdout
	judged := gpu.ContractOf(b)
	if ct != nil {
		judged = *ct
	}
	fmt.Fprintf(w, "moecheck mutants: backend %s, %s, contract %s, budget %d cases or %s per fault, seed %d\n\n", b.Name(), mode, judged, f.cases, f.budget, f.seed)
	fmt.Fprintf(w, "%-21s %-7s %-18s %7s %9s  %s\n", "fault", "caught", "property", "cases", "time", "shrunk T,E,K,H,I")
	missed := 0
	_, err = props.Mutants(a.ctx, be, props.MutantOptions{Faults: set.List(), Cases: f.cases, Timeout: f.budget, Seed: f.seed, Contract: ct, New: f.bf.fresh(a, b),
		Gen: props.GenOptions{DTypes: dts}, Jobs: f.bf.jobs, NewBackend: newBackend}, func(r props.MutantResult) {
		if r.Unsupported {
			fmt.Fprintf(w, "%-21s %-7s %-18s %7d %9s  %s\n", r.Fault.Name, "skipped", "(backend does not reproduce it)", 0, "-", "-")
			return
		}
		if !r.Caught {
			missed++
			fmt.Fprintf(w, "%-21s %-7s %-18s %7d %9s  %s\n", r.Fault.Name, "NO", "-", r.Cases, r.Elapsed.Round(time.Millisecond), "-")
			return
		}
		shrunk := "-"
		if r.Shrunk != nil {
			if c, err := r.Shrunk.Spec.Build(); err == nil {
				shrunk = fmt.Sprintf("%d,%d,%d,%d,%d", c.T, c.E, c.K, c.H, c.I)
			}
		}
		fmt.Fprintf(w, "%-21s %-7s %-18s %7d %9s  %s\n", r.Fault.Name, "yes", r.Property, r.Cases, r.Elapsed.Round(time.Millisecond), shrunk)
	})
	if err != nil {
		if a.ctx.Err() != nil {
			return internalErr(fmt.Errorf("interrupted"))
		}
		return internalErr(err)
	}
	if missed > 0 {
		fmt.Fprintf(w, "\n%s not caught\n", plural(missed, "fault", "faults"))
		return errFailures
	}
	fmt.Fprintln(w, "\nevery fault caught")
	return nil
}
