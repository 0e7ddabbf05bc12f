package nightly

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

// TestSampledRun: a run with Options.Sample names the sample in its start record, every case
// record it judged says what was judged (fraction, seed, per tensor the coverage and a miss-m
// that is the smallest m with (1 − f_min)^m ≤ delta), and a failure's reproduce line carries
// the --sample flags; a full run (no sample, or fraction 1) records none.
func TestSampledRun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sample  oracle.Sample
		sampled bool
	}{
		{"sampled/quarter", oracle.Sample{Fraction: 0.25, Seed: 2}, true},
		{"sampled/full", oracle.Sample{}, false},
		{"sampled/fraction-1", oracle.Sample{Fraction: 1, Seed: 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOptions(t, t.TempDir())
			o.Sample, o.Cases, o.NoArtifacts = tc.sample, 6, true
			if _, err := Run(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			recs := readAll(t, o.Results)
			if s := recs[0].Run.Sample; (s != nil) != tc.sampled || s != nil && (s.Fraction != 0.25 || s.Seed != 2 || s.Tensors != nil) {
				t.Fatalf("start record's sample %+v, want sampled %v", s, tc.sampled)
			}
			judged, fails := 0, 0
			for _, r := range Cases(recs) {
				if r.Status == StatusSkip {
					continue
				}
				judged++
				if r.Status == StatusFail {
					fails++
				}
				if !tc.sampled {
					if r.Sample != nil {
						t.Fatalf("%s: a full run's record carries a sample %+v", r.ID, r.Sample)
					}
					continue
				}
				s := r.Sample
				if s == nil || s.Fraction != 0.25 || s.Seed != 2 || s.Delta != oracle.SampleDelta || len(s.Tensors) == 0 {
					t.Fatalf("%s (%s): sample %+v, want fraction 0.25, seed 2 and its tensors", r.ID, r.Status, s)
				}
				for _, x := range s.Tensors {
					if x.Judged > x.Units || x.Forced > x.Judged || x.JudgedElements > x.Elements || !(x.MinFrac > 0 && x.MinFrac <= 1) {
						t.Errorf("%s %s: inconsistent coverage %+v", r.ID, x.Tensor, x)
					}
					if x.MinFrac < 1 && (math.Pow(1-x.MinFrac, float64(x.MissM)) > s.Delta || math.Pow(1-x.MinFrac, float64(x.MissM-1)) <= s.Delta) {
						t.Errorf("%s %s: miss-m %d is not the smallest m with (1 − %g)^m ≤ %g", r.ID, x.Tensor, x.MissM, x.MinFrac, s.Delta)
					}
				}
				if r.Status == StatusFail {
					if r.Repro != "" && !strings.Contains(r.Repro, "--sample 0.25 --sample-seed 2") {
						t.Errorf("%s: reproduce line %q lacks the sample", r.ID, r.Repro)
					}
				}
			}
			if judged == 0 || fails == 0 {
				t.Fatalf("%d judged records, %d failures: the fixture should have both", judged, fails)
			}
		})
	}
}

// TestSampleRecordSchema: a sampled case record round-trips through a results line
// (records-sampled.golden.jsonl) and its JUnit test case says it passed on a sample; a line
// of an older moecheck, without "sample", still loads as judged whole.
func TestSampleRecordSchema(t *testing.T) {
	now := clock()
	idx := 2
	recs := []Record{
		{Type: TypeStart, Time: now(), Run: &RunInfo{Backend: "cuda", Seed: 1, Shards: 1, Sample: &SampleRecord{Fraction: 0.05, Seed: 7}}},
		{Type: TypeCase, Time: now(), ID: "random/1/2", Kind: KindRandom, Index: &idx, Status: StatusPass, Properties: []string{"matches"}, ElapsedMS: 3,
			Sample: &SampleRecord{Fraction: 0.05, Seed: 7, Delta: 1e-3, Tensors: []SampleTensorRecord{
				{Tensor: "h1", Unit: "row", Units: 4000, Judged: 230, Forced: 30, Elements: 6144000, JudgedElements: 353280, MinFrac: 0.05, MissM: 135},
				{Tensor: "y@local", Unit: "token", Units: 512, Judged: 30, Forced: 4, Elements: 1048576, JudgedElements: 61440, MinFrac: 0.0508, MissM: 133}}}},
	}
	var b bytes.Buffer
	for _, r := range recs {
		line, err := MarshalLine(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
	}
	golden(t, "records-sampled.golden.jsonl", b.Bytes())
	back, _, complete, err := ReadResults(bytes.NewReader(b.Bytes()))
	if err != nil || !complete || len(back) != 2 {
		t.Fatalf("read back: %d records, complete %v, %v", len(back), complete, err)
	}
	if s := back[1].Sample; s == nil || len(s.Tensors) != 2 || s.Tensors[1] != recs[1].Sample.Tensors[1] || s.MaxMissM() != 135 {
		t.Errorf("the sample did not round-trip: %+v", s)
	}
	var j bytes.Buffer
	if err := WriteJUnit(&j, back, JUnitOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`<property name="sample" value="fraction 0.05, seed 7">`, "PASS ON A SAMPLE (not the whole case): fraction 0.05, seed 7", "≥ 135 units"} {
		if !strings.Contains(j.String(), w) {
			t.Errorf("the JUnit XML lacks %q:\n%s", w, j.String())
		}
	}
	old, err := readGolden(t, "records.golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range old {
		if r.Sample != nil || r.Run != nil && r.Run.Sample != nil {
			t.Errorf("an older record reads with a sample: %+v", r)
		}
	}
}

// readGolden reads a results file of testdata.
func readGolden(t *testing.T, name string) ([]Record, error) {
	t.Helper()
	return readAll(t, filepath.Join("testdata", name)), nil
}

// TestOutcomeSampleOfAFailure: a failing record's sample is the failing verdict's own — none
// when that property was judged whole, even if another property of the case was judged on a
// sample (regression: the record said "judged on a sample" of a failure judged whole).
func TestOutcomeSampleOfAFailure(t *testing.T) {
	sampled := &props.Outcome{Property: "matches", Verdict: &oracle.Verdict{Sample: &oracle.SampleReport{Fraction: 0.1, Seed: 3}}}
	whole := &props.Outcome{Property: "poison-invariance", Verdict: &oracle.Verdict{}}
	noVerdict := &props.Outcome{Property: "deterministic"}
	for _, tc := range []struct {
		name   string
		outs   []*props.Outcome
		failed *props.Outcome
		want   bool
	}{
		{"pass/one-sampled", []*props.Outcome{whole, sampled}, nil, true},
		{"pass/none-sampled", []*props.Outcome{whole, noVerdict}, nil, false},
		{"fail/failing-sampled", []*props.Outcome{sampled}, sampled, true},
		{"fail/failing-whole", []*props.Outcome{sampled, whole}, whole, false},
		{"fail/failing-without-verdict", []*props.Outcome{sampled, noVerdict}, noVerdict, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := outcomeSample(tc.outs, tc.failed) != nil; got != tc.want {
				t.Fatalf("sampled = %v, want %v", got, tc.want)
			}
		})
	}
}
