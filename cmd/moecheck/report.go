package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/moecheck/moecheck/internal/report"
)

func (a *app) reportCmd() *cobra.Command {
	var out, title string
	var maxPlots int
	cmd := &cobra.Command{
		Use:   "report RESULTS.jsonl...",
		Short: "Markdown and HTML report with error/bound heatmaps and NaN maps from a nightly results file",
		Long: `report reads a results file written by 'moecheck nightly' and writes, into --out:

  report.md     summary tables (by kind, by property), every failure with what broke, where,
                the reproduce command and its plots
  report.html   the same as one static page with the plots embedded
  plots/*.png   per failure: an error/bound heatmap of the worst stage tensor over (sorted row
                × column), expert row ranges ruled and labelled, the sentinel tail framed in
                magenta; and a map of the non-finite elements with the buffers whose poison
                survived

A leak into the sentinel tail shows as a dark band inside the magenta frame.

Several results files are the shards of one run (nightly --shard i/n on several machines, a
Slurm array or a Kubernetes indexed Job: examples/cluster/) merged into one report: they must
share the backend, faults, seed, case count, shard count, corpus, presets and properties (a
difference is refused, naming it), each a different shard; a missing shard is a warning.
Corpus and preset cases run on every shard and are reported once (failing if any shard
failed them); random cases are listed by index.`,
		Example: `  moecheck report moecheck-out/results.jsonl
  moecheck report out/results.jsonl --out out/report --title "nightly $(date +%F)"
  moecheck report shards/*/results.jsonl --out merged       # the shards of one run, merged`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				out = filepath.Join(filepath.Dir(args[0]), "report")
			}
			if maxPlots < 0 {
				return usageErr("--max-plots %d: must not be negative (0: no plots)", maxPlots)
			}
			if maxPlots == 0 {
				maxPlots = -1 // report.Options: negative is none (0 would be its default, 50)
			}
			r, err := report.ReadFiles(args, report.Options{Title: title, Now: a.now, MaxPlots: maxPlots})
			var me *report.MergeError
			if errors.As(err, &me) {
				return usageErr("%v", me)
			}
			if err != nil {
				return internalErr(err)
			}
			if err := report.Write(out, r); err != nil {
				return internalErr(err)
			}
			for _, w := range r.Warnings {
				fmt.Fprintf(a.stderr, "moecheck report: warning: %s\n", w)
			}
			plots := 0
			for _, f := range r.Failures {
				if f.Heatmap.Name != "" {
					plots++
				}
				if f.NaNMap.Name != "" {
					plots++
				}
			}
			fmt.Fprintf(a.stdout, "%d item(s): %d pass, %d fail, %d skip\n", r.Summary.Total, r.Summary.Pass, r.Summary.Fail, r.Summary.Skip)
			fmt.Fprintf(a.stdout, "wrote %s, %s and %d plot(s) in %s\n", filepath.Join(out, "report.md"), filepath.Join(out, "report.html"), plots, filepath.Join(out, "plots"))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output directory (default: report/ next to the (first) results file)")
	cmd.Flags().StringVar(&title, "title", "", "report title")
	cmd.Flags().IntVar(&maxPlots, "max-plots", 50, "failures that get plots (0: none)")
	return cmd
}
