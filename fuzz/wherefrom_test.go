package fuzz

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/props"
)

// TestWhereFrom: under -fuzz every input runs as plain "FuzzPath", and the save hint of a
// failing seed said "the file named by ... below" although go test writes no file for it.
func TestWhereFrom(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "abc123"), []byte("go test fuzz v1\n[]byte(\"0000001\\x00\")\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seeds := []seedInput{{[]byte("01"), "corpus/seeds/x.case"}, {[]byte("02"), ""}}
	for _, tc := range []struct {
		name, test, data, want string
		kind                   props.OriginKind
	}{
		{"seed/named", "FuzzPath/seed#0", "", "corpus file corpus/seeds/x.case", props.FromFile},
		{"seed/by-bytes", "FuzzPath", "01", "corpus file corpus/seeds/x.case", props.FromFile},
		{"seed/hand-written", "FuzzPath", "02", "hand-written seed", props.FromNowhere},
		{"file/named", "FuzzPath/abc123", "", "--fuzz-file " + filepath.Join("fuzz", dir, "abc123"), props.FromFuzz},
		{"file/by-bytes", "FuzzPath", "0000001\x00", "--fuzz-file " + filepath.Join("fuzz", dir, "abc123"), props.FromFuzz},
		{"new", "FuzzPath", "999", "named by \"Failing input written to ...\" below", props.FromNowhere},
	} {
		t.Run(tc.name, func(t *testing.T) {
			save, o := whereFrom(tc.test, []byte(tc.data), seeds, dir)
			if !strings.Contains(save, tc.want) || o.Kind != tc.kind {
				t.Fatalf("save %q origin %+v, want %q and kind %v", save, o, tc.want, tc.kind)
			}
		})
	}
}
