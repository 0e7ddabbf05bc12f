package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestContractFlag: --contract overrides the backend's contract (named in the output and in
// the reproduce line), an unknown name is a usage error, sim-torch passes under its own
// contract and fails at once under exact, and --sharpness prints the pooled table.
func TestContractFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"Contract/unknown", []string{"check", "--contract", "loose", "--cases", "1"}, 2, nil},
		{"Contract/sim-torch", []string{"check", "--backend", "sim-torch", "--cases", "5"}, 0,
			[]string{"contract torch", "note: deterministic: contract torch does not promise bitwise reruns: judged within bounds derived under torch", "PASS"}},
		{"Contract/sim-torch-exact", []string{"check", "--backend", "sim-torch", "--contract", "exact", "--cases", "5"}, 1,
			[]string{"contract exact", "FAIL case 0: property matches", "--contract exact"}},
		{"Contract/sharpness", []string{"check", "--cases", "3", "--sharpness"}, 0,
			[]string{"sharpness under contract exact, pooled over 3 cases", "\ndW1 "}},
		{"Contract/then-spec-alone", []string{"check", "--then-spec", "T=1"}, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, nil, tc.args...)
			if code != tc.code {
				t.Fatalf("%s: exit %d, want %d\n%s%s", tc.name, code, tc.code, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s: output lacks %q:\n%s", tc.name, w, out)
				}
			}
		})
	}
}

// TestNightlyRecordsContract: nightly's start record names the contract it judged under.
func TestNightlyRecordsContract(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"NightlyContract/declared", `"contract":"torch"`, nil},
		{"NightlyContract/override", `"contract":"any"`, []string{"--contract", "any"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := filepath.Join(t.TempDir(), "results.jsonl")
			args := append([]string{"nightly", "--backend", "sim-torch", "--presets", "none", "--corpus", "none", "--cases", "2",
				"--results", res, "--no-artifacts"}, tc.args...)
			if code, out, errs := run(t, nil, args...); code != 0 {
				t.Fatalf("%s: exit %d\n%s%s", tc.name, code, out, errs)
			}
			b, err := os.ReadFile(res)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tc.want) {
				t.Errorf("%s: results lack %s:\n%s", tc.name, tc.want, b)
			}
		})
	}
}

// TestNightlySharpnessReport: nightly --sharpness pools the sharpness of its random cases into
// the end record, and the report shows it; without the flag neither has it.
func TestNightlySharpnessReport(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		want  bool
	}{{"Sharpness/on", []string{"--sharpness"}, true}, {"Sharpness/off", nil, false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			res := filepath.Join(dir, "results.jsonl")
			args := append([]string{"nightly", "--presets", "none", "--corpus", "none", "--cases", "4", "--results", res, "--no-artifacts"}, tc.flags...)
			if code, out, errs := run(t, nil, args...); code != 0 {
				t.Fatalf("%s: nightly exit %d\n%s%s", tc.name, code, out, errs)
			}
			b, err := os.ReadFile(res)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(b), `"sharpness":{"contract":"exact","cases":4,`); got != tc.want {
				t.Errorf("%s: end record has the pooled sharpness: %v, want %v", tc.name, got, tc.want)
			}
			out := filepath.Join(dir, "rep")
			if code, o, errs := run(t, nil, "report", "--out", out, res); code != 0 {
				t.Fatalf("%s: report exit %d\n%s%s", tc.name, code, o, errs)
			}
			md, err := os.ReadFile(filepath.Join(out, "report.md"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(string(md), "## Sharpness") && strings.Contains(string(md), "| dW1 |"); got != tc.want {
				t.Errorf("%s: report shows the sharpness table: %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}
