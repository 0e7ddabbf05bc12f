package nightly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// normalized is a results file without what depends on the clock: each record as one JSON
// line with Time and the elapsed times zeroed.
func normalized(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for _, r := range readAll(t, path) {
		r.Time, r.ElapsedMS = time.Time{}, 0
		if r.Summary != nil {
			s := *r.Summary
			s.ElapsedS = 0
			r.Summary = &s
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// jobItems are fixed items that run concurrently with 4 jobs: corpus cases with and
// without the fault's effect, one that does not build, one recorded as failed.
func jobItems(t *testing.T) []Item {
	var items []Item
	for seed := uint64(1); seed <= 6; seed++ {
		spec, err := props.ParseSpec(fmt.Sprintf("T=%d H=8 I=8 E=3 K=2 dtype=bf16 poison=nan seed=%d", 3+seed, seed))
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, Item{ID: fmt.Sprintf("corpus/j%d", seed), Kind: KindCorpus, Build: spec.Build, Poison: spec.PoisonPolicy()})
	}
	items = append(items,
		Item{ID: "corpus/unbuildable", Kind: KindCorpus, Build: func() (*moe.Case, error) { return nil, errors.New("no such case") }},
		Item{ID: "corpus/unreadable", Kind: KindCorpus, Fail: "unreadable corpus file: line 3: bad"})
	return items
}

// TestJobsSameRecords checks that a nightly run with 4 jobs writes exactly the records one
// job writes (clock fields aside): fixed items and random cases with faults and shrinking,
// a shard, and a run killed part way (in the random cases, in the items) and resumed with
// another job count.
func TestJobsSameRecords(t *testing.T) {
	newSim := func(int) (gpu.Backend, error) { return sim.New(sim.Options{}), nil }
	for _, tc := range []struct {
		name         string
		shard, of    int
		killAfter    int // case records kept from the jobs=1 file before resuming with 4 jobs (0: no kill)
		minFailCases int
	}{
		{name: "jobs/faults", minFailCases: 3},
		{name: "jobs/shard-1-of-2", shard: 1, of: 2, minFailCases: 2},
		{name: "jobs/killed-resumed", killAfter: 20, minFailCases: 3},
		{name: "jobs/killed-in-the-items", killAfter: 4, minFailCases: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := func(sub string, jobs int) Options {
				o := baseOptions(t, filepath.Join(dir, sub))
				o.Items = append(o.Items, jobItems(t)...)
				o.Cases, o.Seed, o.Shard, o.Shards = 60, 5, tc.shard, tc.of
				o.Faults = fault.Of(fault.LastTileDropped)
				o.Jobs, o.NewBackend = jobs, newSim
				if err := os.MkdirAll(filepath.Dir(o.Results), 0o755); err != nil {
					t.Fatal(err)
				}
				return o
			}
			one := opts("one", 1)
			if _, err := Run(context.Background(), one); err != nil {
				t.Fatal(err)
			}
			want := normalized(t, one.Results)
			four := opts("four", 4)
			if tc.killAfter > 0 {
				data, err := os.ReadFile(one.Results)
				if err != nil {
					t.Fatal(err)
				}
				lines := strings.SplitAfter(string(data), "\n")
				if err := os.CopyFS(filepath.Dir(four.Results), os.DirFS(filepath.Dir(one.Results))); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(four.Results, []byte(strings.Join(lines[:1+tc.killAfter], "")), 0o644); err != nil {
					t.Fatal(err)
				}
				four.Resume = true
				// the resumed file has a second start record: compare it with a jobs=1 resume
				oneR := opts("one-resumed", 1)
				if err := os.CopyFS(filepath.Dir(oneR.Results), os.DirFS(filepath.Dir(four.Results))); err != nil {
					t.Fatal(err)
				}
				oneR.Resume = true
				if _, err := Run(context.Background(), oneR); err != nil {
					t.Fatal(err)
				}
				want = normalized(t, oneR.Results)
			}
			if _, err := Run(context.Background(), four); err != nil {
				t.Fatal(err)
			}
			got := normalized(t, four.Results)
			fails := 0
			for _, l := range want {
				if strings.Contains(l, `"status":"fail"`) {
					fails++
				}
			}
			if fails < tc.minFailCases {
				t.Errorf("%d failing records, want at least %d (the fault must fire)", fails, tc.minFailCases)
			}
			if len(got) != len(want) {
				t.Fatalf("jobs=4: %d records, jobs=1: %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("record %d differs:\n  jobs=4: %s\n  jobs=1: %s", i, got[i], want[i])
				}
			}
		})
	}
}
