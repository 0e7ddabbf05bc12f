package worker

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/internal/phase"
)

// TestFirstReadPhases: a traced reply's reader ends the wait at the first byte and times the
// rest as the read; with nothing to read, the wait alone is written.
func TestFirstReadPhases(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []string
	}{
		{"reply/wait-then-read", "header and payload", []string{"wait for the result", "read and decode the result"}},
		{"empty/wait-only", "", []string{"wait for the result"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tl := phase.New(&b, "trace: ")
			fr := &firstRead{r: strings.NewReader(tc.data), wait: tl.Start("wait for the result"), tl: tl}
			got, err := io.ReadAll(fr)
			if err != nil || string(got) != tc.data {
				t.Fatalf("read %q, %v; want %q", got, err, tc.data)
			}
			fr.done()
			lines := strings.Split(strings.TrimSpace(b.String()), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("timeline %q, want phases %q", b.String(), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d %q, want phase %q", i, lines[i], w)
				}
			}
		})
	}
}
