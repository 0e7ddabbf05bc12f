package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/internal/nightly"
)

func writeResults(t *testing.T, dir string, tail string, recs ...nightly.Record) string {
	t.Helper()
	var b []byte
	for _, r := range recs {
		r.Time = time.Unix(0, 0).UTC()
		l, err := nightly.MarshalLine(r)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, l...)
	}
	path := filepath.Join(dir, "results.jsonl")
	if err := os.WriteFile(path, append(b, tail...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestArtifactPathConfined: a record's artifact path was followed anywhere
// ("../../../../dev/zero" grew the report to gigabytes); a path leaving the results folder is
// now named and not read.
func TestArtifactPathConfined(t *testing.T) {
	for _, p := range []string{"../../../../../../../dev/zero", "/dev/zero", "artifacts/../../x.json"} {
		t.Run("artifact/"+p, func(t *testing.T) {
			path := writeResults(t, t.TempDir(), "",
				nightly.Record{Type: nightly.TypeStart, Run: &nightly.RunInfo{Backend: "sim"}},
				nightly.Record{Type: nightly.TypeCase, ID: "x", Kind: nightly.KindRandom, Status: nightly.StatusFail, Artifact: p})
			r, err := ReadFile(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Failures) != 1 || !strings.Contains(r.Failures[0].Note, "leaves the results folder") {
				t.Fatalf("failures %+v, want a note that the artifact path is not followed", r.Failures)
			}
		})
	}
}

// TestReportWarns: a cut-short last line and unknown statuses were dropped without a word.
func TestReportWarns(t *testing.T) {
	path := writeResults(t, t.TempDir(), `{"v":1,"type":"case","id":"cut`,
		nightly.Record{Type: nightly.TypeStart, Run: &nightly.RunInfo{Backend: "sim"}},
		nightly.Record{Type: nightly.TypeCase, ID: "a", Kind: nightly.KindRandom, Status: "flaky"},
		nightly.Record{Type: nightly.TypeCase, ID: "b", Kind: nightly.KindRandom, Status: nightly.StatusPass})
	r, err := ReadFile(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(r.Warnings, "\n")
	for _, want := range []string{"cut short", `1 case record(s) of unknown status "flaky"`} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %q", w, want)
		}
	}
	var md strings.Builder
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "**Warning:**") {
		t.Error("the markdown report does not show the warnings")
	}
}
