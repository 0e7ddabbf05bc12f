package nightly

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jstemmer/go-junit-report/v2/junit"
)

// JUnitOptions tune WriteJUnit. The zero value is valid: suite names "moecheck.<kind>".
type JUnitOptions struct {
	Name     string // the testsuites name (default "moecheck nightly")
	Hostname string
}

// WriteJUnit renders the case records of a results file as JUnit XML: one testsuite per kind
// (corpus, preset, random) in that order, one testcase per item (the last record of each
// id), a failure element for failing items (the failing property and its message as the
// message, every failure with its location and the reproduce command as the body), a
// skipped element for skipped ones; a pass judged on a sample (Record.Sample) says so in its
// system-out, and a sampled run's suites carry a "sample" property. The timestamp is the first start record's time.
func WriteJUnit(w io.Writer, recs []Record, o JUnitOptions) error {
	if o.Name == "" {
		o.Name = "moecheck nightly"
	}
	var started time.Time
	var run *RunInfo
	for _, r := range recs {
		if r.Type == TypeStart {
			started, run = r.Time, r.Run
			break
		}
	}
	byKind := map[string][]Record{}
	var kinds []string
	for _, r := range Cases(recs) {
		if _, ok := byKind[r.Kind]; !ok {
			kinds = append(kinds, r.Kind)
		}
		byKind[r.Kind] = append(byKind[r.Kind], r)
	}
	order := map[string]int{KindCorpus: 0, KindPreset: 1, KindRandom: 2}
	sortKinds(kinds, order)
	suites := junit.Testsuites{Name: o.Name}
	var total time.Duration
	for id, kind := range kinds {
		ts := junit.Testsuite{Name: "moecheck." + kind, ID: id, Hostname: o.Hostname, Package: "github.com/moecheck/moecheck"}
		if !started.IsZero() {
			ts.SetTimestamp(started)
		}
		if run != nil {
			ts.AddProperty("backend", run.Backend)
			ts.AddProperty("seed", fmt.Sprint(run.Seed))
			if run.Faults != "" {
				ts.AddProperty("faults", run.Faults)
			}
			if run.Sample != nil {
				ts.AddProperty("sample", fmt.Sprintf("fraction %g, seed %d", run.Sample.Fraction, run.Sample.Seed))
			}
		}
		var d time.Duration
		for _, r := range byKind[kind] {
			rd := time.Duration(r.ElapsedMS * float64(time.Millisecond))
			d += rd
			tc := junit.Testcase{Name: r.ID, Classname: "moecheck." + kind, Time: seconds(rd)}
			switch r.Status {
			case StatusFail:
				tc.Failure = &junit.Result{Message: strings.TrimSpace(r.Property + ": " + r.Message), Type: failureType(r), Data: failureBody(r)}
			case StatusSkip:
				tc.Skipped = &junit.Result{Message: r.Message}
			case StatusPass:
				if s := r.Sample; s != nil {
					tc.SystemOut = &junit.Output{Data: fmt.Sprintf("PASS ON A SAMPLE (not the whole case): fraction %g, seed %d; %.3g%% of the sampled tensors' elements judged; a fault in ≥ %d units of a tensor outside the always-judged ones escapes with probability ≤ %g\n",
						s.Fraction, s.Seed, 100*s.JudgedFraction(), s.MaxMissM(), s.Delta)}
				}
			}
			ts.AddTestcase(tc)
		}
		ts.Time = seconds(d)
		total += d
		suites.AddSuite(ts)
	}
	suites.Time = seconds(total)
	return suites.WriteXML(w)
}

func sortKinds(k []string, order map[string]int) {
	rank := func(s string) int {
		if r, ok := order[s]; ok {
			return r
		}
		return len(order)
	}
	for i := 1; i < len(k); i++ {
		for j := i; j > 0 && (rank(k[j]) < rank(k[j-1]) || (rank(k[j]) == rank(k[j-1]) && k[j] < k[j-1])); j-- {
			k[j], k[j-1] = k[j-1], k[j]
		}
	}
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

func failureType(r Record) string {
	if r.CaseError != "" {
		return r.CaseError
	}
	if len(r.Failures) > 0 {
		return r.Failures[0].Check
	}
	return "failure"
}

func failureBody(r Record) string {
	var b strings.Builder
	if r.Config != "" {
		fmt.Fprintf(&b, "case: %s\n", r.Config)
	}
	if r.Spec != "" {
		fmt.Fprintf(&b, "spec: %s\n", r.Spec)
	}
	if r.Shrunk != "" {
		fmt.Fprintf(&b, "shrunk: %s\n", r.Shrunk)
	}
	if r.FirstStage != "" {
		fmt.Fprintf(&b, "first stage: %s\n", r.FirstStage)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "- %s %s: %d element(s); worst %s\n", f.Check, f.Tensor, f.Count, f.Where)
	}
	if r.Repro != "" {
		fmt.Fprintf(&b, "reproduce: %s\n", r.Repro)
	}
	if r.Artifact != "" {
		fmt.Fprintf(&b, "artifact: %s\n", r.Artifact)
	}
	return b.String()
}
