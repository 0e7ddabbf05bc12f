package nightly

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecondWriterRefused: two writers on one results file corrupted it; the second is now
// refused at once, and the first writes on.
func TestSecondWriterRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	a, _, err := openResults(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if err := a.append(Record{Type: TypeStart, Run: &RunInfo{Backend: "sim"}}); err != nil {
		t.Fatal(err)
	}
	for _, resume := range []bool{false, true} {
		_, _, err := openResults(path, resume)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "in use by another moecheck run") {
			t.Fatalf("resume=%v: err = %v, want a usage error naming the other run", resume, err)
		}
	}
	if err := a.append(Record{Type: TypeEnd, Summary: &Summary{}}); err != nil {
		t.Fatal(err)
	}
	a.close()
	f, _ := os.Open(path)
	defer f.Close()
	recs, _, complete, err := ReadResults(f)
	if err != nil || !complete || len(recs) != 2 {
		t.Fatalf("file after the refused writers: %d records, complete %v, err %v", len(recs), complete, err)
	}
	// the lock ends with the writer
	b, _, err := openResults(path, true)
	if err != nil {
		t.Fatalf("reopening after the writer closed: %v", err)
	}
	b.close()
}

// TestOpenResultsKeepsForeignFiles: a file that is not a results file of ours (text without a
// newline, binary data) was cut to nothing; it is now refused and left as it was.
func TestOpenResultsKeepsForeignFiles(t *testing.T) {
	bin := make([]byte, 100<<10)
	for i := range bin {
		bin[i] = byte(i*7919>>3) | 0x80 // no newline, no '{'
	}
	start, _ := MarshalLine(Record{Type: TypeStart, Time: time.Unix(0, 0).UTC(), Run: &RunInfo{Backend: "sim"}})
	for _, tc := range []struct {
		name    string
		content []byte
		want    string
	}{
		{"foreign/notes", []byte("notes"), "not a results record"},
		{"foreign/binary", bin, "not a results record"},
		{"foreign/binary-with-newline", append(append([]byte{}, bin[:500]...), "\n{}\n"...), "not a moecheck results file"},
		{"foreign/record-then-junk", append(append([]byte{}, start...), "junk without newline"...), "not a results record"},
		{"foreign/huge-line", bytes.Repeat([]byte{'{'}, MaxLineBytes+10), "longer than"},
	} {
		for _, resume := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "f")
				if err := os.WriteFile(path, tc.content, 0o644); err != nil {
					t.Fatal(err)
				}
				_, _, err := openResults(path, resume)
				var ue *UsageError
				want := tc.want
				if strings.HasSuffix(tc.name, "record-then-junk") && !resume {
					want = "already holds 1 records"
				}
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
					t.Fatalf("resume=%v: err = %v, want a usage error mentioning %q", resume, err, want)
				}
				got, _ := os.ReadFile(path)
				if !bytes.Equal(got, tc.content) {
					t.Fatalf("resume=%v: the file changed (%d bytes, was %d)", resume, len(got), len(tc.content))
				}
			})
		}
	}
	t.Run("foreign/cut-record-is-cut", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "f")
		os.WriteFile(path, append(append([]byte{}, start...), start[:20]...), 0o644)
		a, recs, err := openResults(path, true)
		if err != nil {
			t.Fatal(err)
		}
		a.close()
		got, _ := os.ReadFile(path)
		if len(recs) != 1 || !bytes.Equal(got, start) {
			t.Fatalf("%d records, file %q: want the partial record cut", len(recs), got)
		}
	})
}

// zeros is an endless reader of zero bytes, like /dev/zero.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	clear(p)
	z.n += int64(len(p))
	return len(p), nil
}

// TestReadResultsBoundsLines: ReadResults read /dev/zero until the kernel killed it.
func TestReadResultsBoundsLines(t *testing.T) {
	z := &zeros{}
	_, _, _, err := ReadResults(z)
	if err == nil || !strings.Contains(err.Error(), "line 1 is longer than the 4194304-byte limit") {
		t.Fatalf("err = %v, want the line named with the limit", err)
	}
	if z.n > 2*MaxLineBytes {
		t.Fatalf("read %d bytes for a %d-byte line limit", z.n, MaxLineBytes)
	}
}

// TestReadArtifactBounded: ReadArtifact read whole files of any size, devices included.
func TestReadArtifactBounded(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(MaxArtifactBytes + 10) // sparse: no disk used
	f.Close()
	for _, tc := range []struct{ name, path, want string }{
		{"artifact/device", os.DevNull, "not a regular file"},
		{"artifact/too-big", big, "larger than the 67108864-byte limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadArtifact(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

var _ io.Reader = (*zeros)(nil)
