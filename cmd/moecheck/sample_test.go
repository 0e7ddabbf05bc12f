package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/internal/nightly"
)

// TestCheckSample: check --sample judges a sample and says so: a sampled pass prints the
// coverage table and "PASS ON A SAMPLE", never a bare PASS; a fault it finds fails (exit 1)
// with a reproduce line carrying the sample; bad values are usage errors (exit 2).
func TestCheckSample(t *testing.T) {
	const spec = "T=48 H=16 I=8 E=3 K=3 world=1 rank=0 global=0 dtype=bf16 act=swiglu layout=standard bias=0 routing=uniform weights=unit data=normal poison=nan seed=5"
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // in stdout or stderr
		not  *regexp.Regexp
	}{
		{"pass/sampled", []string{"check", "--spec", spec, "--properties", "matches", "--sample", "0.1", "--sample-seed", "4"}, 0,
			[]string{"sampled check: fraction 0.1, seed 4", "dW1@local", "PASS ON A SAMPLE (not the whole case)"}, regexp.MustCompile(`(?m)^PASS$`)},
		{"pass/fraction-one-is-full", []string{"check", "--spec", spec, "--properties", "matches", "--sample", "1"}, 0,
			[]string{"PASS"}, regexp.MustCompile(`SAMPLE|sampled`)},
		{"fail/sampled-fault", []string{"check", "--spec", spec, "--properties", "matches", "--sample", "0.1", "--faults", "accum-in-dtype"}, 1,
			[]string{"FAIL property matches", "--sample 0.1 --sample-seed 1"}, nil},
		{"usage/fraction-above-one", []string{"check", "--spec", spec, "--sample", "2"}, 2, []string{"--sample 2: a fraction in [0, 1]"}, nil},
		{"usage/fraction-nan", []string{"check", "--spec", spec, "--sample", "NaN"}, 2, []string{"--sample NaN"}, nil},
		{"usage/seed-without-sample", []string{"check", "--spec", spec, "--sample-seed", "3"}, 2, []string{"--sample-seed needs --sample"}, nil},
		{"random/note", []string{"check", "--cases", "3", "--properties", "matches", "--sample", "0.5"}, 0, []string{"note: sampled check (--sample 0.5 --sample-seed 1)", "PASS ON A SAMPLE (not the whole cases"}, regexp.MustCompile(`(?m)^PASS$`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errb := run(t, nil, tc.args...)
			all := out + errb
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			if tc.not != nil && tc.not.MatchString(out) {
				t.Errorf("output matches %s:\n%s", tc.not, out)
			}
		})
	}
}

// TestNightlySample: nightly --sample judges every case on a sample and says so where it
// lasts: each line of progress, the closing PASS ON A SAMPLE, the start and case records
// ("sample", with the miss bound per tensor) and the report; a bare --resume keeps the
// sample, another one is refused; bad values are usage errors.
func TestNightlySample(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "results.jsonl")
	base := []string{"nightly", "--presets", "qwen3-30b-a3b", "--preset-scale", "8", "--corpus", "none", "--results", res, "--jobs", "1"}
	code, out, errb := run(t, nil, append(base, "--cases", "2", "--sample", "0.25", "--sample-seed", "3")...)
	if code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errb)
	}
	for _, w := range []string{"sampled check (--sample 0.25 --sample-seed 3)", "ON A SAMPLE: fraction 0.25, seed 3", "PASS ON A SAMPLE (not the whole cases"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if regexp.MustCompile(`(?m)^PASS$`).MatchString(out) {
		t.Errorf("a sampled run ends with a bare PASS:\n%s", out)
	}
	code, out, errb = run(t, nil, "nightly", "--results", res, "--resume")
	if code != 0 {
		t.Fatalf("resume: exit %d:\n%s\n%s", code, out, errb)
	}
	fh, err := os.Open(res)
	if err != nil {
		t.Fatal(err)
	}
	recs, _, _, err := nightly.ReadResults(fh)
	fh.Close()
	if err != nil {
		t.Fatal(err)
	}
	starts, cases := 0, 0
	for _, r := range recs {
		switch {
		case r.Type == nightly.TypeStart:
			starts++
			if s := r.Run.Sample; s == nil || s.Fraction != 0.25 || s.Seed != 3 {
				t.Errorf("start record %d: sample %+v, want fraction 0.25 seed 3", starts, s)
			}
		case r.Type == nightly.TypeCase && r.Status == nightly.StatusPass:
			cases++
			if r.Sample == nil || r.Sample.Fraction != 0.25 || len(r.Sample.Tensors) == 0 {
				t.Errorf("%s: sample %+v", r.ID, r.Sample)
			}
		}
	}
	if starts != 2 || cases != 3 {
		t.Fatalf("%d start records and %d passing case records, want 2 and 3", starts, cases)
	}
	out2 := filepath.Join(dir, "report")
	if code, out, errb := run(t, nil, "report", res, "--out", out2); code != 0 {
		t.Fatalf("report: exit %d:\n%s\n%s", code, out, errb)
	}
	md, err := os.ReadFile(filepath.Join(out2, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"## PASS ON A SAMPLE", "sampled check (fraction 0.25, seed 3)", "| preset/qwen3-30b-a3b/"} {
		if !strings.Contains(string(md), w) {
			t.Errorf("report.md lacks %q:\n%s", w, md)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nightly-sample/resume-other", []string{"nightly", "--results", res, "--resume", "--sample", "0.5"}, "--sample 0.5 (recorded: 0.25)"},
		{"nightly-sample/above-one", append(base[:len(base)-4:len(base)-4], "--results", filepath.Join(dir, "x.jsonl"), "--sample", "2"), "--sample 2: a fraction in [0, 1]"},
		{"nightly-sample/seed-alone", append(base[:len(base)-4:len(base)-4], "--results", filepath.Join(dir, "y.jsonl"), "--sample-seed", "2"), "--sample-seed needs --sample"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errb := run(t, nil, tc.args...)
			if code != exitUsage || !strings.Contains(errb, tc.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s\n%s", code, exitUsage, tc.want, out, errb)
			}
		})
	}
}

// TestNightlySampleJudgedWhole: with --sample on a backend whose results are judged end to end
// (sim-torch: no stages, so nothing is sampled), the run ends with a plain PASS and the
// summary counts no sampled pass (regression: it printed "PASS ON A SAMPLE" whenever --sample
// was given, though every case was judged whole).
func TestNightlySampleJudgedWhole(t *testing.T) {
	res := filepath.Join(t.TempDir(), "results.jsonl")
	code, out, errb := run(t, nil, "nightly", "--backend", "sim-torch", "--corpus", "none", "--presets", "none",
		"--cases", "3", "--sample", "0.5", "--results", res, "--jobs", "1")
	if code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errb)
	}
	if strings.Contains(out, "PASS ON A SAMPLE") || !regexp.MustCompile(`(?m)^PASS$`).MatchString(out) {
		t.Errorf("a run judged whole does not end with a plain PASS:\n%s", out)
	}
}
