package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/jobs"

	"github.com/spf13/cobra"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/props"
)

func (a *app) replayCmd() *cobra.Command {
	var bf backendFlags
	var properties string
	cmd := &cobra.Command{
		Use:   "replay FILE|DIR...",
		Short: "Run corpus cases through every property and print a verdict per case",
		Long: `replay loads corpus cases (a .case file, or every case below a directory, subdirectories
included except testdata) and checks every
property on each (or --properties), under each poison policy the entry names (signature poison
when it names none). An entry's fault and property hints are shown, not applied: --faults
switches faults on. It prints one verdict per case, the failing checks with their
locations, and exits 1 if any case fails.`,
		Example: `  moecheck replay corpus/seeds corpus/regressions
  moecheck replay corpus                                         # every case below corpus/
  moecheck replay --backend cuda corpus/regressions/fuzz-0661b5f17dd5d30c.case
  moecheck replay --faults mask-after-weight corpus/seeds       # does the corpus catch it?`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			faults, err := bf.faultSet()
			if err != nil {
				return err
			}
			ps, err := parseProperties("--properties", properties)
			if err != nil {
				return err
			}
			// A file found in a directory that does not parse is a failing entry (named with its
			// file and line), and the rest still run, as in nightly.
			cs, bad, err := loadCorpusFiles(args, a.caseLimits(), true)
			if err != nil {
				return err
			}
			for _, b := range bad {
				for _, arg := range args {
					if filepath.Clean(arg) == filepath.Clean(b.path) {
						return usageErr("%v", b.err) // a file named on the command line must parse
					}
				}
			}
			if len(cs) == 0 && len(bad) == 0 {
				return usageErr("no corpus cases in %v", args)
			}
			bf.maxCases = len(cs)
			pool, err := bf.pool(a)
			if err != nil {
				return err
			}
			defer pool.close()
			ct, err := bf.contractFlag()
			if err != nil {
				return err
			}
			w := a.stdout
			failed := len(bad)
			for _, bfile := range bad {
				fmt.Fprintf(w, "FAIL %s: unreadable corpus file: %v\n", bfile.path, bfile.err)
			}
			// The cases run --jobs at a time, each job on its own backend; verdicts are
			// printed in the order of the files.
			type verdict struct {
				out    bytes.Buffer
				failed bool
				err    error
			}
			envs := make([]*props.Env, bf.jobs)
			var runErr error
			jobs.Ordered(len(cs), bf.jobs, func(job, i int) *verdict {
				v := &verdict{}
				if envs[job] == nil {
					b, err := pool.open(job)
					if err != nil {
						v.err = err
						return v
					}
					envs[job] = &props.Env{Backend: b, Faults: faults, NoStages: bf.noStages, Contract: ct, New: bf.fresh(a, b)}
				}
				if i == 0 {
					// before the first verdict printed, whichever job runs it (it was job 0's
					// first case: with several jobs not always the first file, so the line
					// moved: TestJobsSameOutput/jobs/replay failed now and then)
					fmt.Fprintf(&v.out, "contract: %s\n", envs[job].JudgeContract())
				}
				v.failed, v.err = a.replayOne(&v.out, envs[job], &bf, faults, ps, cs[i])
				return v
			}, func(i int, v *verdict) bool {
				w.Write(v.out.Bytes())
				if v.err != nil {
					runErr = v.err
					return false
				}
				if v.failed {
					failed++
				}
				return true
			})
			if runErr != nil {
				var ce *exitError
				if errors.As(runErr, &ce) {
					return runErr
				}
				return internalErr(runErr)
			}
			fmt.Fprintf(w, "%d case(s), %d failing", len(cs)+len(bad), failed)
			if len(bad) > 0 {
				fmt.Fprintf(w, " (%d unreadable file(s))", len(bad))
			}
			fmt.Fprintln(w)
			if failed > 0 {
				return errFailures
			}
			return nil
		},
	}
	bf.register(cmd.Flags(), true)
	bf.registerJobs(cmd.Flags())
	cmd.Flags().StringVar(&properties, "properties", "", "properties to check (comma list; default all: "+propertyNames()+")")
	return cmd
}

// replayOne checks one corpus case under each of its poison policies and writes its verdict
// to w; failed reports a failing case, err an internal error that ends the command.
func (a *app) replayOne(w io.Writer, env *props.Env, bf *backendFlags, faults fault.Set, ps []props.Property, c corpusCase) (failed bool, err error) {
	use := ps
	if len(use) == 0 {
		use = props.All()
	}
	t0 := time.Now()
	poisons := c.Poisons
	if len(poisons) == 0 {
		poisons = []gpu.Poison{c.Trial.Poison}
	}
	var bad *props.Outcome
	var under gpu.Poison
	runs := 0
	for _, p := range poisons { // the entry's poison policies, in order, up to the first failure
		tr := c.Trial
		tr.Poison = p
		outs, b, err := props.CheckTrial(a.ctx, env, use, tr)
		if u, ok := gpu.IsUnsupported(err); ok {
			fmt.Fprintf(w, "  unsupported %s (poison %s): %s\n", c.Path, p, u.Reason)
			continue
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", c.Path, err)
		}
		runs += len(outs)
		if b != nil {
			bad, under = b, p
			break
		}
	}
	hint := ""
	if !c.Entry.Faults.Empty() {
		hint = ", found with faults " + c.Entry.Faults.String()
	}
	if bad == nil {
		fmt.Fprintf(w, "PASS %s (%s, %d property checks, %.2fs%s)\n", c.Name, c.Case.Config, runs, time.Since(t0).Seconds(), hint)
		return false, nil
	}
	fmt.Fprintf(w, "FAIL %s (%s, poison %s%s): property %s: %s\n", c.Name, c.Case.Config, under, hint, bad.Property, bad.Message)
	writeFailures(w, bad, "  ")
	cflag := ""
	if cr := contractRepro(env); cr != "" {
		cflag = " --contract " + cr
	}
	fmt.Fprintf(w, "  triage: moecheck triage --backend %s%s%s %s --no-save\n", quote(bf.backend), faultFlag(faults), cflag, quote(c.Path))
	return true, nil
}
