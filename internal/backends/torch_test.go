package backends

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	checkout := t.TempDir()
	if err := os.MkdirAll(filepath.Join(checkout, "python", "moecheck"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(checkout, "python", "moecheck", "worker.py"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name     string
		backend  string
		dir      string
		env      map[string]string
		wantArgv []string
		wantEnv  string // substring of the one extra entry ("" = none)
		wantErr  string
	}{
		{"sim", "sim", "", nil, nil, "", ""},
		{"worker", "worker:./w -backend cuda", "", nil, []string{"./w", "-backend", "cuda"}, "", ""},
		{"torch/default-python", "torch:transformers:grouped_mm", "", nil,
			[]string{"python3", "-m", "moecheck.worker", "--target", "transformers:grouped_mm"}, "", ""},
		{"torch/MOECHECK_PYTHON", "torch:ledger:fixed --no-probe", "", map[string]string{"MOECHECK_PYTHON": "/usr/bin/python3"},
			[]string{"/usr/bin/python3", "-m", "moecheck.worker", "--target", "ledger:fixed", "--no-probe"}, "", ""},
		{"torch/checkout", "torch:callable:m:f", checkout, map[string]string{"PYTHONPATH": "/x"},
			[]string{"python3", "-m", "moecheck.worker", "--target", "callable:m:f"}, "PYTHONPATH=" + filepath.Join(checkout, "python") + ":/x", ""},
		{"torch/checkout-subdir", "torch:callable:m:f", filepath.Join(checkout, "python", "moecheck"), nil,
			[]string{"python3", "-m", "moecheck.worker", "--target", "callable:m:f"}, "PYTHONPATH=" + filepath.Join(checkout, "python"), ""},
		{"torch/empty", "torch:", "", nil, nil, "", "needs a target"},
		{"unknown", "pytorch", "", nil, nil, "", "unknown backend"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Resolve(tc.backend, tc.dir, env(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.Argv, tc.wantArgv) {
				t.Errorf("argv %q, want %q", r.Argv, tc.wantArgv)
			}
			if tc.wantEnv == "" && len(r.Env) != 0 || tc.wantEnv != "" && (len(r.Env) != 1 || r.Env[0] != tc.wantEnv) {
				t.Errorf("env %q, want %q", r.Env, tc.wantEnv)
			}
		})
	}
}
