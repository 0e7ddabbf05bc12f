package props

import (
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"regexp"
	"strings"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Trial is the value that flows through moecheck: a case, how to run it (the poison policy
// single-run properties use) and where it came from. Every property, the runner, both
// shrinkers, triage, nightly, the fuzz targets and Verify pass Trials around; its Origin is
// what Reproduce turns into a command line.
type Trial struct {
	Case   *moe.Case
	Poison gpu.Poison
	Origin Origin
	// Prior, when set, is the case the history property runs right before Case on the same
	// backend instance (nil: derived from the trial, PriorOf). Reproduce writes a pair of
	// specs as --spec PRIOR --then-spec CASE.
	Prior *Trial
}

// OriginKind says what kind of source a case came from.
type OriginKind uint8

const (
	// FromNowhere: a case built in code, with no way to rebuild it from outside.
	FromNowhere OriginKind = iota
	// FromSpec: built from a one-line Spec (Origin.Spec), e.g. case i of a seed or --spec.
	FromSpec
	// FromFile: a corpus file (Origin.Path).
	FromFile
	// FromPreset: a model-preset case (Origin.Preset, the id nightly prints).
	FromPreset
	// FromFuzz: an input of the native fuzz target FuzzPath (Origin.Path, the input file
	// under fuzz/testdata/fuzz/FuzzPath; Origin.Test, its name there).
	FromFuzz
	// FromVerify: a case Verify persisted (Origin.Path) and replays as the go subtest
	// Origin.Test of the package in Origin.Dir.
	FromVerify
)

// Origin is where a case came from: enough to rebuild it outside this process.
type Origin struct {
	Kind   OriginKind
	Spec   Spec   // FromSpec
	Path   string // FromFile, FromFuzz, FromVerify: the file
	Preset string // FromPreset
	Test   string // FromFuzz, FromVerify: the go test name (t.Name()) that replays the case
	Dir    string // FromVerify: the directory of the test's package
}

// SpecTrial is the trial of a spec: its case, its poison policy, its origin.
func SpecTrial(s Spec) (Trial, error) {
	c, err := s.Build()
	if err != nil {
		return Trial{}, err
	}
	return Trial{Case: c, Poison: s.PoisonPolicy(), Origin: Origin{Kind: FromSpec, Spec: s.normalized()}}, nil
}

// How is how a reproduce line runs a case: the backend as the CLI names it ("" for a
// backend the CLI cannot open, such as a user's backend under Verify), the faults switched
// on, whether stage capture is off, and the properties to check (comma list; "" for all).
type How struct {
	Backend    string
	Faults     fault.Set
	NoStages   bool
	Properties string
	// Contract, when set, is the contract the run was judged under in place of the
	// backend's own (--contract).
	Contract string
	// Sample, when set, is the sampled check the run was judged with (--sample F
	// --sample-seed S, moecheck check only): the same units are judged again. A failure a
	// sample finds, the full check finds too (it judges a superset with the same bounds).
	Sample string
}

// Reproduce is the one command line that reproduces trial t's failure run as h says, for
// every origin and every backend:
//
//   - a spec:        moecheck check --backend B --spec '…'
//   - a pair:        moecheck check --backend B --spec 'FIRST' --then-spec 'SECOND' (history)
//   - a preset case: moecheck check --backend B --preset ID
//   - a corpus file: moecheck replay --backend B FILE
//   - a fuzz input:  MOECHECK_BACKEND=B go test ./fuzz -run '^FuzzPath$/^NAME$'
//   - a case Verify persisted: cd DIR && go test -run '^TestX$/^property$/^NAME$' (the test's
//     own backend, whatever the CLI knows)
//
// with --faults, --no-stages, --contract and --properties (or MOECHECK_FAULTS) as h says. A case built
// in code has no command line; Reproduce says so instead of printing one that fails.
func Reproduce(t Trial, h How) string {
	o := t.Origin
	switch o.Kind {
	case FromVerify:
		return fmt.Sprintf("cd %s && go test -run %s", ShellQuote(o.Dir), ShellQuote(RunPattern(o.Test)))
	case FromFuzz:
		env := ""
		if h.Backend != "" && h.Backend != "sim" {
			env += "MOECHECK_BACKEND=" + ShellQuote(h.Backend) + " "
		}
		if !h.Faults.Empty() {
			env += "MOECHECK_FAULTS=" + h.Faults.String() + " "
		}
		return env + "go test ./fuzz -run " + ShellQuote(RunPattern(o.Test))
	case FromNowhere:
		return "(a case built in code: no command line reproduces it)"
	}
	var b strings.Builder
	if o.Kind == FromFile {
		b.WriteString("moecheck replay")
	} else {
		b.WriteString("moecheck check")
	}
	if h.Backend != "" {
		b.WriteString(" --backend " + ShellQuote(h.Backend))
	}
	switch o.Kind {
	case FromSpec:
		if p := t.Prior; p != nil && p.Origin.Kind == FromSpec {
			fmt.Fprintf(&b, " --spec '%s' --then-spec '%s'", p.Origin.Spec.normalized(), o.Spec.normalized())
			break
		}
		fmt.Fprintf(&b, " --spec '%s'", o.Spec.normalized())
	case FromPreset:
		b.WriteString(" --preset " + ShellQuote(o.Preset))
	}
	if !h.Faults.Empty() {
		b.WriteString(" --faults " + h.Faults.String())
	}
	if h.NoStages {
		b.WriteString(" --no-stages")
	}
	if h.Contract != "" {
		b.WriteString(" --contract " + ShellQuote(h.Contract))
	}
	if h.Properties != "" {
		b.WriteString(" --properties " + ShellQuote(h.Properties))
	}
	if h.Sample != "" && o.Kind != FromFile {
		b.WriteString(" " + h.Sample)
	}
	if o.Kind == FromFile {
		b.WriteString(" " + ShellQuote(o.Path))
	}
	return b.String()
}

// RunPattern is the go test -run pattern that selects exactly the (sub)test named name
// (as testing.T.Name prints it): each level anchored and quoted.
func RunPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// ShellQuote quotes s for a POSIX shell when it needs quoting.
func ShellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
