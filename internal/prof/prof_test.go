package prof

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStart(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, prefix string
		files        int
		errs         string
	}{
		{"off/empty", "", 0, ""},
		{"on/writes", filepath.Join(dir, "p"), 1, ""},
		{"bad/dir", filepath.Join(dir, "missing", "p"), 0, EnvVar},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errb bytes.Buffer
			Start(tc.prefix, "/x/moecheck", &errb)()
			if tc.errs == "" && errb.Len() > 0 || tc.errs != "" && !strings.Contains(errb.String(), tc.errs) {
				t.Fatalf("stderr %q, want %q", errb.String(), tc.errs)
			}
			if tc.prefix == "" {
				return
			}
			m, _ := filepath.Glob(tc.prefix + ".moecheck.*")
			if len(m) != tc.files {
				t.Fatalf("profiles %v, want %d", m, tc.files)
			}
			if tc.files > 0 {
				if st, err := os.Stat(m[0]); err != nil || st.Size() == 0 {
					t.Fatalf("profile %v: %v", m[0], err)
				}
			}
		})
	}
}
