package report

import (
	"bytes"
	"context"
	"flag"
	"github.com/moecheck/moecheck/internal/fault"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/nightly"
	"github.com/moecheck/moecheck/props"
)

var update = flag.Bool("update", false, "rewrite the golden files")

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

// fixture writes a results file with a corpus pass, a skipped preset and a failure with a
// real artifact (no-mask-up-dgrad on a case with a sentinel tail) into dir.
func fixture(t *testing.T, dir string) []nightly.Record {
	t.Helper()
	spec, err := props.ParseSpec("T=6 H=12 I=8 E=3 K=3 world=2 rank=1 global=1 dtype=bf16 bias=1 poison=signature seed=5")
	if err != nil {
		t.Fatal(err)
	}
	c, err := spec.Build()
	if err != nil {
		t.Fatal(err)
	}
	a, err := nightly.BuildArtifact(context.Background(), sim.New(sim.Options{}), fault.Of(fault.NoMaskUpDgrad), c)
	if err != nil {
		t.Fatal(err)
	}
	a.ID = "random/1/3"
	if err := nightly.WriteArtifact(filepath.Join(dir, "artifacts", "random-1-3.json"), a); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	idx := 3
	return []nightly.Record{
		{V: 1, Type: nightly.TypeStart, Time: at, Run: &nightly.RunInfo{Backend: "sim", Faults: "no-mask-up-dgrad", Seed: 1, Cases: 10, Shards: 1}},
		{V: 1, Type: nightly.TypeCase, Time: at, ID: "corpus/seeds/a.case", Kind: nightly.KindCorpus, Status: nightly.StatusPass, Properties: []string{"matches", "deterministic"}, ElapsedMS: 10},
		{V: 1, Type: nightly.TypeCase, Time: at, ID: "preset/mixtral-8x7b/ep8/rank1/T4/seed1", Kind: nightly.KindPreset, Status: nightly.StatusSkip, Message: "needs about 11000 MiB | over budget"},
		{V: 1, Type: nightly.TypeCase, Time: at, ID: "random/1/3", Kind: nightly.KindRandom, Index: &idx, Status: nightly.StatusFail,
			Config: c.Config.String(), Spec: spec.String(), Properties: []string{"matches"}, Property: "matches", Message: "stage xs: 27 element(s)",
			FirstStage: "xs", Failures: []nightly.FailureRecord{{Check: "stage", Tensor: "xs", Count: 27, Where: "xs[120] sorted_row=10 sentinel-tail"}},
			ElapsedMS: 30, Repro: "moecheck check --backend sim --spec '" + spec.String() + "' --faults no-mask-up-dgrad", Artifact: "artifacts/random-1-3.json"},
		{V: 1, Type: nightly.TypeStart, Time: at, Run: &nightly.RunInfo{Backend: "sim", Seed: 1, Resumed: true}},
	}
}

func TestGoldenMarkdown(t *testing.T) {
	dir := t.TempDir()
	recs := fixture(t, dir)
	r, err := Build(recs, Options{Dir: dir, Now: func() time.Time { return time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.golden.md", b.Bytes())
}

func TestWriteReport(t *testing.T) {
	dir := t.TempDir()
	recs := fixture(t, dir)
	r, err := Build(recs, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "report")
	if err := Write(out, r); err != nil {
		t.Fatal(err)
	}
	f := r.Failures[0]
	if f.Heatmap.Name == "" || f.NaNMap.Name == "" {
		t.Fatalf("plots missing: heat %q nan %q note %q", f.Heatmap.Name, f.NaNMap.Name, f.Note)
	}
	for _, name := range []string{f.Heatmap.Name, f.NaNMap.Name} {
		fh, err := os.Open(filepath.Join(out, "plots", name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(fh)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 300 {
			t.Errorf("%s: %v is too small", name, b)
		}
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(html), "data:image/png;base64,"); n != 2 {
		t.Errorf("html embeds %d images, want 2", n)
	}
	if !strings.Contains(string(html), "random/1/3") || !strings.Contains(string(html), "first stage: <b>xs</b>") {
		t.Errorf("html lacks the failure:\n%s", html)
	}
}

func TestHeatmapMarksTail(t *testing.T) {
	// the tail rows of the leak are the failing ones, the real rows pass: check the colors of
	// the rendered grid directly
	dir := t.TempDir()
	fixture(t, dir)
	a, err := nightly.ReadArtifact(filepath.Join(dir, "artifacts", "random-1-3.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := a.Map(a.Worst)
	ratio, _, err := m.Decode()
	if err != nil {
		t.Fatal(err)
	}
	img := grid(m, func(i int) colorRGBA { return ratioColor(ratio[i]) })
	sy := img.Bounds().Dy() / m.Rows
	for r := 0; r < m.Rows; r++ {
		got := img.RGBAAt(0, r*sy)
		tail := r >= m.RealRows
		if tail != (got == colBad) {
			t.Errorf("row %d (tail %v): color %v", r, tail, got)
		}
	}
}

type colorRGBA = color.RGBA
