package report

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/nightly"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// shardRun runs nightly shard `shard` of `shards` (0 shards: unsharded) into dir with a corpus
// item and random cases under a fault, and returns the results file.
func shardRun(t *testing.T, dir string, shard, shards int, seed uint64) string {
	t.Helper()
	m, _ := props.ByName("matches")
	spec, err := props.ParseSpec("T=3 H=4 I=4 E=2 K=2 dtype=bf16 seed=2")
	if err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results.jsonl")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	o := nightly.Options{Backend: sim.New(sim.Options{}), Results: res, Seed: seed, Cases: 24, Shard: shard, Shards: shards,
		Faults: fault.Of(fault.LastTileDropped), Properties: []props.Property{m}, ItemProperties: []props.Property{m},
		Gen:   props.GenOptions{MaxT: 8, LargePct: -1, MaxH: 12, MaxI: 12, MaxE: 4, MaxK: 3, MaxWorld: 2},
		Items: []nightly.Item{{ID: "corpus/x.case", Kind: nightly.KindCorpus, Build: func() (*moe.Case, error) { return spec.Build() }}},
		Now:   func() time.Time { return time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC) }}
	if _, err := nightly.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestReadFilesMergesShards(t *testing.T) {
	dir := t.TempDir()
	whole, err := ReadFile(shardRun(t, filepath.Join(dir, "whole"), 0, 0, 5), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := 2; i >= 0; i-- { // any order
		paths = append(paths, shardRun(t, filepath.Join(dir, "shard", string(rune('0'+i))), i, 3, 5))
	}
	for _, tc := range []struct {
		name     string
		paths    []string
		warn     string
		mismatch string
	}{
		{name: "merge/all-shards", paths: paths},
		{name: "merge/missing-shard", paths: paths[:2], warn: "shard(s) 0 of 3 missing"},
		{name: "merge/same-shard-twice", paths: []string{paths[0], paths[0]}, mismatch: "both shard 2/3"},
		{name: "merge/other-seed", paths: []string{paths[0], shardRun(t, filepath.Join(dir, "seed6"), 1, 3, 6)}, mismatch: "seed 5 vs 6"},
		{name: "merge/unsharded-with-shard", paths: []string{paths[0], filepath.Join(dir, "whole", "results.jsonl")}, mismatch: "shard count 3 vs 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ReadFiles(tc.paths, Options{})
			if tc.mismatch != "" {
				var me *MergeError
				if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.mismatch) {
					t.Fatalf("error %v, want a MergeError naming %q", err, tc.mismatch)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.warn != "" {
				if !strings.Contains(strings.Join(r.Warnings, "\n"), tc.warn) {
					t.Fatalf("warnings %q lack %q", r.Warnings, tc.warn)
				}
				return
			}
			if len(r.Warnings) > 0 {
				t.Errorf("warnings: %q", r.Warnings)
			}
			s, w := r.Summary, whole.Summary
			if s.Total != w.Total || s.Pass != w.Pass || s.Fail != w.Fail || s.Skip != w.Skip {
				t.Errorf("merged %d/%d/%d/%d (total/pass/fail/skip), the unsharded run %d/%d/%d/%d", s.Total, s.Pass, s.Fail, s.Skip, w.Total, w.Pass, w.Fail, w.Skip)
			}
			if w.Fail < 2 {
				t.Errorf("%d failures: the fault must fire for the test to mean anything", w.Fail)
			}
			ids := func(r *Report) []string {
				var out []string
				for _, f := range r.Failures {
					out = append(out, f.Record.ID+"|"+f.Record.Shrunk+"|"+f.Note)
				}
				return out
			}
			if a, b := ids(r), ids(whole); !slices.Equal(a, b) {
				t.Errorf("merged failures %q, unsharded %q", a, b)
			}
			if !slices.Equal(r.Shards, []int{0, 1, 2}) || !strings.Contains(r.runLine(), "shards 0,1,2 of 3 merged") {
				t.Errorf("shards %v, run line %q", r.Shards, r.runLine())
			}
			for _, f := range r.Failures {
				if f.Heatmap.Name == "" {
					t.Errorf("%s: no plot (%s): artifacts must be read next to their own shard's file", f.Record.ID, f.Note)
				}
			}
		})
	}
}
