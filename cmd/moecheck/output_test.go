package main

import (
	"strings"
	"testing"
)

// TestFailurePrintedOnce: a failing check is printed once, not as the message and again as
// the first listed failure.
func TestFailurePrintedOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"check/spec", []string{"check", "--spec", leakSpec, "--faults", "mask-after-weight"}},
		{"check/random", []string{"check", "--cases", "60", "--seed", "3", "--faults", "mask-after-weight"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, _ := run(t, nil, tc.args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, out)
			}
			seen := map[string]bool{}
			for _, l := range strings.Split(out, "\n") {
				l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "- "))
				if !strings.Contains(l, " element(s); worst ") {
					continue
				}
				if i := strings.Index(l, ": "); strings.HasPrefix(l, "FAIL property") && i >= 0 {
					l = l[i+2:] // the message after "FAIL property P: "
				}
				if seen[l] {
					t.Errorf("printed twice: %s\n%s", l, out)
				}
				seen[l] = true
			}
		})
	}
}
