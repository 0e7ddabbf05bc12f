package nightly

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"github.com/moecheck/moecheck/internal/fault"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update after checking):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// clock is an injected clock: each call advances by one second from a fixed instant.
func clock() func() time.Time {
	t := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(time.Second); return t }
}

// fixtureRecords is a small results file with every record type and status.
func fixtureRecords() []Record {
	now := clock()
	idx := 7
	return []Record{
		{Type: TypeStart, Time: now(), Run: &RunInfo{Backend: "sim", Seed: 1, Cases: 20, Shard: 0, Shards: 1, Corpus: 1, Presets: []string{"preset/qwen3-30b-a3b/ep8/rank3/T4/seed1"}}},
		{Type: TypeCase, Time: now(), ID: "corpus/seeds/tiny.case", Kind: KindCorpus, Source: "corpus/seeds/tiny.case", Status: StatusPass,
			Config: "T=2 H=4 I=4 E=2 K=2 bf16 swiglu standard", Properties: []string{"matches", "poison-invariance"}, MaxRatio: 0.25, ElapsedMS: 12.5},
		{Type: TypeCase, Time: now(), ID: "preset/qwen3-30b-a3b/ep8/rank3/T4/seed1", Kind: KindPreset, Status: StatusSkip, Message: "needs about 9000 MiB, over the budget"},
		{Type: TypeCase, Time: now(), ID: "random/1/7", Kind: KindRandom, Index: &idx, Status: StatusFail,
			Config: "T=3 H=8 I=8 E=3 K=3 bf16 swiglu standard ep=1/2", Spec: "T=3 H=8", Shrunk: "T=1 H=1",
			Properties: []string{"matches"}, Property: "matches", Message: "stage xs: 1 element(s)", FirstStage: "xs",
			Failures: []FailureRecord{{Check: "stage", Tensor: "xs", Count: 1, Where: "xs[2] token=0 slot=2 expert=1 sorted_row=2 col=0 sentinel-tail",
				Token: 0, Slot: 2, Expert: 1, SortedRow: 2, Sentinel: true, Got: 0.5078125, Want: 0, Bound: 0, Ratio: Float(inf())},
				{Check: "signature", Tensor: "dX", Count: 1, Where: "dX[0] token=0 col=0 buffer=d_xs", Token: 0, Slot: -1, Expert: -1, SortedRow: -1,
					Buffer: "d_xs", Got: Float(nan()), Want: Float(nan()), Bound: Float(nan()), Ratio: Float(inf())}},
			ElapsedMS: 40.25, Repro: "moecheck check --backend sim --spec 'T=1 H=1' --faults no-mask-up-dgrad", Artifact: "artifacts/random-1-7.json"},
		{Type: TypeCase, Time: now(), ID: "random/1/8", Kind: KindRandom, Index: intp(8), Status: StatusFail, Property: "matches",
			Message: "gpu: case crash: sim: simulated device fault", CaseError: "crash", ElapsedMS: 1},
		{Type: TypeEnd, Time: now(), Summary: &Summary{Total: 4, Pass: 1, Fail: 2, Skip: 1, ByKind: map[string]*Counts{
			KindCorpus: {Total: 1, Pass: 1}, KindPreset: {Total: 1, Skip: 1}, KindRandom: {Total: 2, Fail: 2}}, Failed: []string{"random/1/7", "random/1/8"}, ElapsedS: 0.05375}},
	}
}

func intp(i int) *int { return &i }

func TestGoldenJSONL(t *testing.T) {
	var b bytes.Buffer
	for _, r := range fixtureRecords() {
		line, err := MarshalLine(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
	}
	golden(t, "records.golden.jsonl", b.Bytes())
	// and it reads back to the same records
	recs, good, complete, err := ReadResults(bytes.NewReader(b.Bytes()))
	if err != nil || !complete || good != int64(b.Len()) || len(recs) != len(fixtureRecords()) {
		t.Fatalf("read back: %d records, complete %v, %d/%d bytes, %v", len(recs), complete, good, b.Len(), err)
	}
	var again bytes.Buffer
	for _, r := range recs {
		line, _ := MarshalLine(r)
		again.Write(line)
	}
	if !bytes.Equal(again.Bytes(), b.Bytes()) {
		t.Errorf("records do not round-trip:\n%s\n%s", again.Bytes(), b.Bytes())
	}
	if s := Summarize(recs); s.Total != 4 || s.Fail != 2 || s.Skip != 1 || s.Pass != 1 {
		t.Errorf("summary %+v", s)
	}
}

func TestGoldenJUnit(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJUnit(&b, fixtureRecords(), JUnitOptions{Hostname: "ci"}); err != nil {
		t.Fatal(err)
	}
	golden(t, "junit.golden.xml", b.Bytes())
}

func TestReadResultsTruncated(t *testing.T) {
	var b bytes.Buffer
	for _, r := range fixtureRecords()[:3] {
		line, _ := MarshalLine(r)
		b.Write(line)
	}
	full := b.Len()
	b.WriteString(`{"v":1,"type":"case","id":"rand`) // killed mid-line
	recs, good, complete, err := ReadResults(&b)
	if err != nil || complete || good != int64(full) || len(recs) != 3 {
		t.Fatalf("got %d records, complete %v, good %d (want %d), %v", len(recs), complete, good, full, err)
	}
	if _, _, _, err := ReadResults(strings.NewReader("{\"v\":1}\nnot json\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("malformed line: %v", err)
	}
}

// testItems are two small fixed items: a seeded spec case and one from a preset-like config.
func testItems(t *testing.T) []Item {
	spec, err := props.ParseSpec("T=4 H=8 I=8 E=3 K=3 world=2 rank=1 global=1 dtype=bf16 bias=1 poison=signature seed=5")
	if err != nil {
		t.Fatal(err)
	}
	return []Item{
		{ID: "corpus/a", Kind: KindCorpus, Source: "a.case", Build: spec.Build, Poison: spec.PoisonPolicy()},
		{ID: "corpus/b", Kind: KindCorpus, Source: "b.case", Build: func() (*moe.Case, error) {
			s := spec
			s.Seed = 9
			return s.Build()
		}, Poison: spec.PoisonPolicy()},
		{ID: "preset/skipped", Kind: KindPreset, Skip: "too big for this machine"},
	}
}

func readAll(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, _, complete, err := ReadResults(f)
	if err != nil || !complete {
		t.Fatalf("reading %s: complete %v, %v", path, complete, err)
	}
	return recs
}

// small bounds the random cases so the test stays fast.
var small = props.GenOptions{MaxT: 6, LargePct: -1, MaxH: 12, MaxI: 12, MaxE: 4, MaxK: 4, MaxWorld: 3}

func baseOptions(t *testing.T, dir string) Options {
	return Options{Backend: sim.New(sim.Options{}), Items: testItems(t), Seed: 3, Cases: 10, Gen: small,
		Properties: []props.Property{mustProp(t, "matches"), mustProp(t, "deterministic")},
		Faults:     fault.Of(fault.NoMaskUpDgrad), Results: filepath.Join(dir, "results.jsonl"), Now: clock()}
}

func TestResumeAfterKill(t *testing.T) {
	dir := t.TempDir()
	// the uninterrupted run
	full := baseOptions(t, filepath.Join(dir, "full"))
	out, err := Run(context.Background(), full)
	if err != nil {
		t.Fatal(err)
	}
	want := Cases(readAll(t, full.Results))
	if len(want) != 13 || out.Summary.Fail == 0 {
		t.Fatalf("full run: %d items, %d failures", len(want), out.Summary.Fail)
	}
	// a killed run: its first lines, then half a line
	killed := baseOptions(t, filepath.Join(dir, "killed"))
	data, err := os.ReadFile(full.Results)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	partial := strings.Join(lines[:7], "") + lines[7][:len(lines[7])/2]
	// the artifacts of the recorded failures were written before their records
	if err := os.CopyFS(filepath.Join(dir, "killed"), os.DirFS(filepath.Join(dir, "full"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(killed.Results, []byte(partial), 0o644); err != nil {
		t.Fatal(err)
	}
	// without --resume the file is refused
	if _, err := Run(context.Background(), killed); !errors.As(err, new(*UsageError)) {
		t.Fatalf("run on a used file without resume: %v", err)
	}
	// a different seed is refused
	bad := killed
	bad.Resume, bad.Seed = true, 4
	if _, err := Run(context.Background(), bad); !errors.As(err, new(*UsageError)) {
		t.Fatalf("resume with another seed: %v", err)
	}
	killed.Resume = true
	out, err = Run(context.Background(), killed)
	if err != nil {
		t.Fatal(err)
	}
	if out.Skipped == 0 {
		t.Errorf("resume skipped nothing")
	}
	recs := readAll(t, killed.Results)
	seen := map[string]int{}
	for _, r := range recs {
		if r.Type == TypeCase {
			seen[r.ID]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s recorded %d times", id, n)
		}
	}
	got := Cases(recs)
	if len(got) != len(want) {
		t.Fatalf("resumed run has %d items, the full run %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Status != want[i].Status || got[i].Shrunk != want[i].Shrunk {
			t.Errorf("item %d: %s %s %q, want %s %s %q", i, got[i].ID, got[i].Status, got[i].Shrunk, want[i].ID, want[i].Status, want[i].Shrunk)
		}
	}
	if last := recs[len(recs)-1]; last.Type != TypeEnd || last.Summary.Total != len(want) {
		t.Errorf("last record %+v", last)
	}
	// a failure has its artifact with a map of the first failing stage
	for _, r := range got {
		if r.Status != StatusFail {
			continue
		}
		a, err := ReadArtifact(filepath.Join(filepath.Dir(killed.Results), r.Artifact))
		if err != nil {
			t.Fatal(err)
		}
		m := a.Map(a.Worst)
		if m == nil || m.Failed == 0 {
			t.Fatalf("%s: artifact without a failing map: %+v", r.ID, a)
		}
		if a.FirstStage != "xs" || a.Worst != "xs" {
			t.Errorf("%s: first stage %s, worst map %s; want xs (no-mask-up-dgrad)", r.ID, a.FirstStage, a.Worst)
		}
		ratio, nonFinite, err := m.Decode()
		if err != nil || len(ratio) != m.Rows*m.Cols || len(nonFinite) != len(ratio) {
			t.Fatalf("decode: %v", err)
		}
		break
	}
}

func TestInterruptAndCrash(t *testing.T) {
	dir := t.TempDir()
	o := baseOptions(t, dir)
	o.Faults = fault.Of(fault.Crash)
	o.Cases = 4
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	o.Progress = writerFunc(func(p []byte) {
		if n++; n == 2 { // after the second item: interrupt
			cancel()
		}
	})
	out, err := Run(ctx, o)
	if !errors.Is(err, ErrInterrupted) || !out.Interrupted {
		t.Fatalf("interrupt: %v (%+v)", err, out)
	}
	o.Resume, o.Progress = true, nil
	out, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	// every case crashed, and every crash is a recorded failure
	s := out.Summary
	if s.Total != 7 || s.Fail != 6 || s.Skip != 1 {
		t.Fatalf("summary %+v", s)
	}
	for _, r := range Cases(readAll(t, o.Results)) {
		if r.Status == StatusFail && r.CaseError != "crash" {
			t.Errorf("%s: case error %q, want crash", r.ID, r.CaseError)
		}
	}
}

type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

func inf() float64 { return 1 / zero }
func nan() float64 { return zero / zero }

var zero = 0.0

func mustProp(t *testing.T, name string) props.Property {
	t.Helper()
	p, err := props.ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
