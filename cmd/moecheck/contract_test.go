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
			[]string{"contract torch", "note: deterministic: contract torch does not promise bitwise reruns", "PASS"}},
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
