package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWorkerProtocolErrorExit3: a worker sending malformed frames mid-case was counted as a
// kernel failure (exit 1); it is a device error of the worker (exit 3), named as such.
func TestWorkerProtocolErrorExit3(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hostile worker")
	}
	bin := filepath.Join(t.TempDir(), "hostile")
	if out, err := exec.Command("go", "build", "-o", bin, "../../internal/worker/testdata/hostile").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name, mode, want string
		args             []string
	}{
		{"worker/garbage", "garbage", "worker protocol error", nil},
		{"worker/wrong-shape", "wrong-shape", "worker protocol error", nil},
		{"worker/no-hello", "no-hello", "no hello", []string{"--worker-start-timeout", "200ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"check", "--cases", "1", "--backend", "worker:" + bin + " " + tc.mode}, tc.args...)
			code, out, errs := run(t, nil, args...)
			if code != exitInternal || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, want 3 naming %q:\n%s\n%s", code, tc.want, out, errs)
			}
		})
	}
}
