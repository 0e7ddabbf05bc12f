package main

import (
	"bytes"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/props"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

func (a *app) saveCmd() *cobra.Command {
	var spec, fuzzFile, dir, name, note, faults string
	cmd := &cobra.Command{
		Use:   "save",
		Short: "Save a failing case into the corpus (corpus/regressions) with a provenance comment",
		Long: `save writes a case into a corpus directory (default corpus/regressions) as NAME.case, via a
temporary file and a rename, with provenance comments saying where it came from. The case is a
--spec (the one-line spec of a check failure or reproduce command) or a Go fuzz crasher file
(--fuzz-file fuzz/testdata/fuzz/FuzzPath/<hash>: the bytes FuzzPath decoded with moe.DecodeCase).

Every nightly run replays the regressions directory.`,
		Example: `  moecheck save --spec 'T=1 H=1 I=1 E=1 K=2 world=2 rank=0 global=0 dtype=bf16 seed=5' --name leak2 --note "transformers #48205"
  moecheck save --fuzz-file fuzz/testdata/fuzz/FuzzPath/0661b5f17dd5d30c --dir out/regressions`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (spec == "") == (fuzzFile == "") {
				return usageErr("save needs exactly one of --spec or --fuzz-file")
			}
			var e *corpus.Entry
			if spec != "" {
				s, err := parseSpec(spec, a.caseLimits())
				if err != nil {
					return err
				}
				c, err := s.Build()
				if err != nil {
					return usageErr("--spec: %v", err)
				}
				if name == "" {
					name = fmt.Sprintf("spec-T%dH%dI%dE%dK%d-%s", c.T, c.H, c.I, c.E, c.K, shortHash(c))
				}
				e = &corpus.Entry{Name: name, Case: c, Data: specData(s), Poisons: []gpu.Poison{s.PoisonPolicy()},
					Comments: []string{"saved by moecheck save from spec: " + s.String()}}
			} else {
				data, err := readFuzzFile(fuzzFile)
				if err != nil {
					return usageErr("--fuzz-file: %v", err)
				}
				if name == "" {
					name = "fuzz-" + filepath.Base(fuzzFile)
				}
				e = corpus.FromBytes(name, data, moe.DecodeLimits{})
				e.Comments = append([]string{"saved by moecheck save from the fuzz crasher " + fuzzFile}, e.Comments...)
			}
			if note != "" {
				e.Comments = append(e.Comments, note)
			}
			if faults != "" {
				fs, err := fault.ParseSet(faults)
				if err != nil {
					return usageErr("--faults: %v", err)
				}
				e.Faults = fs
			}
			path, saved, err := saveEntry(dir, e)
			if err != nil {
				return err
			}
			if !saved {
				fmt.Fprintf(a.stdout, "already saved: %s\n", path)
				return nil
			}
			c := e.Case
			poison := "any"
			if len(e.Poisons) > 0 {
				poison = e.Poisons[0].String()
			}
			tr := props.Trial{Case: c, Origin: props.Origin{Kind: props.FromFile, Path: path}}
			fmt.Fprintf(a.stdout, "saved %s (%s, poison %s)\nreplay: %s\n", path, c.Config, poison, props.Reproduce(tr, props.How{Faults: e.Faults}))
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&spec, "spec", "", "the case as a one-line spec")
	fs.StringVar(&fuzzFile, "fuzz-file", "", "a Go fuzz corpus file of FuzzPath (go test fuzz v1, one []byte value)")
	fs.StringVar(&dir, "dir", filepath.Join("corpus", "regressions"), "corpus directory")
	fs.StringVar(&name, "name", "", "case name (file NAME.case; default derived from the case)")
	fs.StringVar(&note, "note", "", "an extra provenance line (what bug, which issue)")
	fs.StringVar(&faults, "faults", "", "record the catalog faults the case was found with (a hint; replay does not switch them on)")
	return cmd
}

// readFuzzFile reads a Go fuzz corpus file ("go test fuzz v1" and one value per line) and
// returns its first value, which must be a []byte or string literal.
func readFuzzFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "go test fuzz v1" {
		return nil, fmt.Errorf("%s: not a Go fuzz corpus file (want the header \"go test fuzz v1\")", path)
	}
	for _, l := range lines[1:] {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		var lit string
		switch {
		case strings.HasPrefix(l, "[]byte(") && strings.HasSuffix(l, ")"):
			lit = l[len("[]byte(") : len(l)-1]
		case strings.HasPrefix(l, "string(") && strings.HasSuffix(l, ")"):
			lit = l[len("string(") : len(l)-1]
		default:
			return nil, fmt.Errorf("%s: value %q is not a []byte or string (FuzzPath takes one []byte)", path, l)
		}
		s, err := strconv.Unquote(lit)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return bytes.Clone([]byte(s)), nil
	}
	return nil, fmt.Errorf("%s: no value", path)
}
