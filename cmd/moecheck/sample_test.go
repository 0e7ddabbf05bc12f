package main

import (
	"regexp"
	"strings"
	"testing"
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
		{"random/note", []string{"check", "--cases", "3", "--properties", "matches", "--sample", "0.5"}, 0, []string{"note: sampled check (--sample 0.5 --sample-seed 1)"}, nil},
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
