package main

import (
	"fmt"
	"time"

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
		Long: `replay loads corpus cases (a .case file, or every case in a directory) and checks every
property on each (or --properties), under each poison policy the entry names (signature poison
when it names none). An entry's fault and property hints are shown, not applied: --faults
switches faults on. It prints one verdict per case, the failing checks with their
locations, and exits 1 if any case fails.`,
		Example: `  moecheck replay corpus/seeds corpus/regressions
  moecheck replay --backend cuda corpus/regressions/leak2.case
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
			cs, err := loadCorpus(args, a.caseLimits())
			if err != nil {
				return err
			}
			if len(cs) == 0 {
				return usageErr("no corpus cases in %v", args)
			}
			b, err := bf.open(a)
			if err != nil {
				return err
			}
			defer b.Close()
			env := &props.Env{Backend: b, Faults: faults, NoStages: bf.noStages}
			w := a.stdout
			failed := 0
			for _, c := range cs {
				use := ps
				if len(use) == 0 {
					use = props.All()
				}
				t0 := time.Now()
				poisons := c.Poisons
				if len(poisons) == 0 {
					poisons = []gpu.Poison{gpu.Poison(c.Spec.Poison)}
				}
				var bad *props.Outcome
				var under gpu.Poison
				runs := 0
				for _, p := range poisons { // the entry's poison policies, in order, up to the first failure
					spec := c.Spec
					spec.Poison = int(p)
					outs, b, err := props.CheckCase(a.ctx, env, use, c.Case, spec)
					if u, ok := gpu.IsUnsupported(err); ok {
						fmt.Fprintf(a.stdout, "  unsupported %s (poison %s): %s\n", c.Path, p, u.Reason)
						continue
					}
					if err != nil {
						return internalErr(fmt.Errorf("%s: %w", c.Path, err))
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
					continue
				}
				failed++
				fmt.Fprintf(w, "FAIL %s (%s, poison %s%s): property %s: %s\n", c.Name, c.Case.Config, under, hint, bad.Property, bad.Message)
				writeFailures(w, bad.Failures, "  ")
				fmt.Fprintf(w, "  triage: moecheck triage --backend %s%s %s --no-save\n", quote(bf.backend), faultFlag(faults), quote(c.Path))
			}
			fmt.Fprintf(w, "%d case(s), %d failing\n", len(cs), failed)
			if failed > 0 {
				return errFailures
			}
			return nil
		},
	}
	bf.register(cmd.Flags(), true)
	cmd.Flags().StringVar(&properties, "properties", "", "properties to check (comma list; default all: "+propertyNames()+")")
	return cmd
}
