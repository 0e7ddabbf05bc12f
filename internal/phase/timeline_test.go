package phase

import (
	"bytes"
	"strings"
	"testing"
)

func TestTimeline(t *testing.T) {
	for _, tc := range []struct {
		name  string
		w     bool
		lines int
	}{
		{"nil/writes-nothing", false, 0},
		{"on/one-line-per-phase", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			var tl *Timeline
			if tc.w {
				tl = New(&b, "trace: ")
			}
			tl.Time("first", func() {})
			s := tl.Start("second")
			x := 0
			for i := range 1 << 20 {
				x += i
			}
			_ = x
			s.End()
			got := strings.Count(b.String(), "\n")
			if got != tc.lines {
				t.Fatalf("%d lines, want %d: %q", got, tc.lines, b.String())
			}
			if tc.w && (!strings.Contains(b.String(), "trace: first") || !strings.Contains(b.String(), "cores")) {
				t.Fatalf("output %q lacks the phase names or the cores column", b.String())
			}
		})
	}
}
