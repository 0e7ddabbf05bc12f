package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/internal/nightly"
)

// sampledFixture is a sampled run's records (nightly --sample): two items that passed on a
// sample, one that failed on a sample, and an older record without a sample (judged whole).
func sampledFixture() []nightly.Record {
	at := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	smp := func(tensors ...nightly.SampleTensorRecord) *nightly.SampleRecord {
		return &nightly.SampleRecord{Fraction: 0.05, Seed: 7, Delta: 1e-3, Tensors: tensors}
	}
	h1 := nightly.SampleTensorRecord{Tensor: "h1", Unit: "row", Units: 4000, Judged: 230, Forced: 30, Elements: 4000 * 1536, JudgedElements: 230 * 1536, MinFrac: 0.05, MissM: 135}
	dw1 := nightly.SampleTensorRecord{Tensor: "dW1", Unit: "dw-row", Units: 24576, Judged: 1300, Forced: 64, Elements: 24576 * 2048, JudgedElements: 1300 * 2048, MinFrac: 0.0498, MissM: 136}
	xs := nightly.SampleTensorRecord{Tensor: "xs", Unit: "row", Units: 40, Judged: 40, Forced: 40, Elements: 40 * 2048, JudgedElements: 40 * 2048, MinFrac: 1, MissM: 0}
	return []nightly.Record{
		{V: 1, Type: nightly.TypeStart, Time: at, Run: &nightly.RunInfo{Backend: "cuda", Seed: 1, Shards: 1, Sample: &nightly.SampleRecord{Fraction: 0.05, Seed: 7}}},
		{V: 1, Type: nightly.TypeCase, Time: at, ID: "preset/deepseek-v3/ep8/rank1/T16384/seed1", Kind: nightly.KindPreset, Status: nightly.StatusPass, Properties: []string{"matches"}, ElapsedMS: 9000, Sample: smp(xs, h1, dw1)},
		{V: 1, Type: nightly.TypeCase, Time: at, ID: "preset/qwen3-30b-a3b/ep8/rank1/T16384/seed1", Kind: nightly.KindPreset, Status: nightly.StatusPass, Properties: []string{"matches"}, ElapsedMS: 4000, Sample: smp(h1)},
		{V: 1, Type: nightly.TypeCase, Time: at, ID: "corpus/seeds/a.case", Kind: nightly.KindCorpus, Status: nightly.StatusPass, Properties: []string{"matches"}, ElapsedMS: 10},
		{V: 1, Type: nightly.TypeCase, Time: at, ID: "random/1/4", Kind: nightly.KindRandom, Status: nightly.StatusFail, Properties: []string{"matches"}, Property: "matches",
			Message: "stage h1: 3 element(s)", FirstStage: "h1", Failures: []nightly.FailureRecord{{Check: "stage", Tensor: "h1", Count: 3, Where: "h1[7] sorted_row=7"}}, ElapsedMS: 20, Sample: smp(h1)},
	}
}

// TestGoldenMarkdownSampled: a report of a sampled run says which items passed on a sample
// (PASS ON A SAMPLE) with the fraction and seed, the miss bound per tensor over them, and
// which failure was judged on a sample; an item without a sample is not listed among them.
func TestGoldenMarkdownSampled(t *testing.T) {
	r, err := Build(sampledFixture(), Options{Now: func() time.Time { return time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Sampled) != 2 {
		t.Fatalf("%d items passed on a sample, want 2 (the corpus record carries none, the failure is a failure)", len(r.Sampled))
	}
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "report-sampled.golden.md", b.Bytes())
	var h bytes.Buffer
	if err := r.WriteHTML(&h); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PASS ON A SAMPLE", "<td>dW1</td><td>dw-row</td><td class=\"n\">1</td><td class=\"n\">0.0498</td><td class=\"n\">136</td>", "sampled check (fraction 0.05, seed 7)", "judged on a sample (fraction 0.05, seed 7)"} {
		if !strings.Contains(h.String(), want) {
			t.Errorf("the HTML report lacks %q", want)
		}
	}
}

// TestMergeRefusesOtherSample: shards of a sampled run and of a full one (or of another
// sample) are not shards of one run, even in files without recorded flags.
func TestMergeRefusesOtherSample(t *testing.T) {
	a := &nightly.RunInfo{Backend: "cuda", Seed: 1, Shards: 2, Sample: &nightly.SampleRecord{Fraction: 0.05, Seed: 7}}
	for _, tc := range []struct {
		name string
		b    *nightly.SampleRecord
		want string
	}{
		{"merge-sample/full", nil, "sample fraction 0.05 seed 7 vs none"},
		{"merge-sample/other-seed", &nightly.SampleRecord{Fraction: 0.05, Seed: 8}, "sample fraction 0.05 seed 7 vs fraction 0.05 seed 8"},
		{"merge-sample/same", &nightly.SampleRecord{Fraction: 0.05, Seed: 7}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := *a
			b.Shard, b.Sample = 1, tc.b
			d := strings.Join(runDiff(a, &b), ", ")
			if d != tc.want {
				t.Fatalf("runDiff = %q, want %q", d, tc.want)
			}
		})
	}
}
