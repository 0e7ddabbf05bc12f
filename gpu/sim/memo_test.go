package sim

import (
	"fmt"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
)

// memoStep is one step of a memo scenario: mutate changes the case in place (or returns a
// new one), then the case runs under every poison policy (stale twice) with faults.
type memoStep struct {
	name   string
	mutate func(t *testing.T, c *moe.Case) *moe.Case
	faults string
	forget bool // Forget both Backends before the step
}

// memoScenario is a case and the steps run on it, in order, on the same Backends.
type memoScenario struct {
	name  string
	first func(t *testing.T) *moe.Case
	steps []memoStep
	// hits are the memo slots that must serve at least one computation in the scenario (a
	// bitwise comparison with a memo that is never used could not fail).
	hits []int
}

// same leaves the case as it is.
func same(*testing.T, *moe.Case) *moe.Case { return nil }

// memoCfg is large enough for every stage to pass memoMinWork, with a sentinel tail (EP).
var memoCfg = moe.Config{T: 24, H: 16, I: 16, E: 4, K: 2, DType: moe.BF16, Bias: true, EP: moe.EP{World: 2, Rank: 1}}

// twoExperts is a case of K = 1 and E = 2 with exact data (small integers: every sum of the
// path is exact, so h1 does not depend on the dtype), token t routed to expert ids[t]; equal
// makes both experts' weights (not their biases) equal.
func twoExperts(t *testing.T, ids []int32, equal, bias bool) *moe.Case {
	cfg := moe.Config{T: len(ids), H: 16, I: 16, E: 2, K: 1, DType: moe.BF16, Bias: bias}
	c, err := moe.Generate(cfg, moe.Routing{IDs: ids, Weights: make([]float64, len(ids))}, 1, moe.Normal)
	if err != nil {
		t.Fatal(err)
	}
	for s := range c.Routing.Weights {
		c.Routing.Weights[s] = 1
	}
	for i := range c.X {
		c.X[i], c.DY[i] = float64(i%5-2), float64(i%3-1)
	}
	for i := range c.W1 {
		c.W1[i] = float64(i%7-3) / 8
	}
	for i := range c.W2 {
		c.W2[i] = float64(i%5-2) / 4
	}
	if equal { // the standard layout's expert blocks are contiguous
		copy(c.W1[len(c.W1)/2:], c.W1[:len(c.W1)/2])
		copy(c.W2[len(c.W2)/2:], c.W2[:len(c.W2)/2])
	}
	for i := range c.B1 {
		c.B1[i] = float64(i%4 - 1)
	}
	for i := range c.B2 {
		c.B2[i] = float64(i%3 - 1)
	}
	if err := c.Validate(moe.Limits{}); err != nil {
		t.Fatal(err)
	}
	return c
}

// route sets c's routing to ids in place.
func route(ids ...int32) func(*testing.T, *moe.Case) *moe.Case {
	return func(t *testing.T, c *moe.Case) *moe.Case {
		copy(c.Routing.IDs, ids)
		return nil
	}
}

// splitIDs is ids of n tokens, the first a on expert 0, the rest on expert 1.
func splitIDs(n, a int) []int32 {
	ids := make([]int32, n)
	for i := a; i < n; i++ {
		ids[i] = 1
	}
	return ids
}

// TestMemoSameAsWithout: a Backend with the stage memo (memo.go) gives, run after run, what
// one without it gives — outputs and stages bitwise — under every poison policy and fault set,
// with the inputs, routing, activation, dtype, faults and shapes changed between Runs (each
// scenario changes what one part of a stage's key covers, so dropping that part from the key
// makes this test fail), and the memo serves the runs it is meant for.
func TestMemoSameAsWithout(t *testing.T) {
	var scenarios []memoScenario
	// Every fault set of TestOutputsHash and the rest of the catalog, on a case with empty
	// experts and on one with a sentinel tail: the runs of a policy after the first hit.
	for _, fs := range []string{"", "stale-empty-wgrad", "tail-stale-unmasked", "nondeterministic-sum", "accum-in-dtype",
		"no-mask-up-dgrad,combine-in-dtype", "neighbour-weights", "no-mask-down-dgrad", "gate-up-swapped",
		"mask-after-weight,sentinel-wrap", "clamp-sentinel,zero-token-row", "empty-expert-wgrad", "histogram-sentinel",
		"exclusive-offsets", "ep-no-rank-offset", "last-tile-dropped", "sentinel-wrap"} {
		for _, k := range []routingKind{routeRandom, routeEmptyExperts} {
			sc := memoScenario{
				name:  fmt.Sprintf("faults=%s/routing=%s", fs, k),
				first: func(t *testing.T) *moe.Case { return makeCase(t, memoCfg, k, moe.Normal, 5) },
				steps: []memoStep{{name: "first", mutate: same, faults: fs}, {name: "again", mutate: same, faults: fs}},
			}
			if fs == "" {
				sc.hits = []int{memoGemm1, memoGemm2, memoDgrad2, memoDgrad1, memoWgrad2, memoWgrad1, memoAct, memoActBack}
			}
			scenarios = append(scenarios, sc)
		}
	}
	scenarios = append(scenarios,
		memoScenario{
			name:  "inputs",
			first: func(t *testing.T) *moe.Case { return makeCase(t, memoCfg, routeRandom, moe.Normal, 7) },
			steps: []memoStep{
				{name: "first", mutate: same},
				{name: "x-in-place", mutate: func(_ *testing.T, c *moe.Case) *moe.Case { c.X[3] = 2 - c.X[3]/c.X[3]; return nil }},
				{name: "dy-in-place", mutate: func(_ *testing.T, c *moe.Case) *moe.Case { c.DY[len(c.DY)-2] = 3; return nil }},
				{name: "w1-in-place", mutate: func(_ *testing.T, c *moe.Case) *moe.Case { c.W1[5] = 3; return nil }},
				{name: "w2-in-place", mutate: func(_ *testing.T, c *moe.Case) *moe.Case { c.W2[len(c.W2)-1] = -3; return nil }},
				{name: "b1-in-place", mutate: func(_ *testing.T, c *moe.Case) *moe.Case { c.B1[1] = 5; return nil }},
				{name: "b2-in-place", mutate: func(_ *testing.T, c *moe.Case) *moe.Case { c.B2[0] = -5; return nil }},
				{name: "activation-changed", mutate: func(_ *testing.T, c *moe.Case) *moe.Case { c.Act = 1 - c.Act; return nil }},
				{name: "gate-up-swapped", mutate: same, faults: "gate-up-swapped"},
				{name: "accum-in-dtype", mutate: same, faults: "accum-in-dtype"},
				{name: "plain-again", mutate: same},
				{name: "after-forget", mutate: same, forget: true},
			},
			hits: []int{memoGemm1, memoGemm2, memoDgrad2, memoDgrad1, memoWgrad2, memoWgrad1, memoAct, memoActBack},
		},
		memoScenario{
			// Rows moved to the other expert, the input rows unchanged: the row→expert map.
			// Then rows that read expert 0's weights as group 1 (NeighbourWeights on E = 2):
			// the map unchanged, the groups (biases) changed.
			name:  "experts",
			first: func(t *testing.T) *moe.Case { return twoExperts(t, splitIDs(16, 16), false, true) },
			steps: []memoStep{
				{name: "all-on-0", mutate: same},
				{name: "all-on-1-reading-0", mutate: route(splitIDs(16, 0)...), faults: "neighbour-weights"},
				{name: "all-on-1", mutate: same},
				{name: "all-on-0-again", mutate: route(splitIDs(16, 16)...)},
			},
			hits: []int{memoGemm1, memoGemm2, memoDgrad2, memoDgrad1, memoAct, memoActBack},
		},
		memoScenario{
			// Fault StaleEmptyWgrad across routings: an expert empty in one Run keeps the
			// previous Run's block, whether that Run computed its blocks or took them from the
			// memo; NondeterministicSum's run index goes on over the steps.
			name:  "stale-history",
			first: func(t *testing.T) *moe.Case { return twoExperts(t, splitIDs(16, 16), false, true) },
			steps: []memoStep{
				{name: "all-on-0", mutate: same, faults: "stale-empty-wgrad,nondeterministic-sum"},
				{name: "split", mutate: route(splitIDs(16, 9)...), faults: "stale-empty-wgrad,nondeterministic-sum"},
				{name: "all-on-1", mutate: route(splitIDs(16, 0)...), faults: "stale-empty-wgrad,nondeterministic-sum"},
				{name: "all-on-0-again", mutate: route(splitIDs(16, 16)...), faults: "stale-empty-wgrad,nondeterministic-sum"},
				{name: "split-again", mutate: route(splitIDs(16, 9)...), faults: "stale-empty-wgrad,nondeterministic-sum"},
			},
			hits: []int{memoGemm1, memoGemm2, memoDgrad2, memoDgrad1, memoWgrad2, memoWgrad1, memoAct, memoActBack},
		},
		memoScenario{
			// Both experts' weights equal, no bias: moving the split between them changes only
			// the wgrads' expert ranges (every GEMM's output is the same).
			name:  "ranges",
			first: func(t *testing.T) *moe.Case { return twoExperts(t, splitIDs(16, 6), true, false) },
			steps: []memoStep{
				{name: "6-10", mutate: same},
				{name: "7-9", mutate: route(splitIDs(16, 7)...)},
				{name: "7-9-again", mutate: same},
			},
			hits: []int{memoGemm1, memoGemm2, memoDgrad2, memoDgrad1, memoWgrad2, memoWgrad1, memoAct, memoActBack},
		},
		memoScenario{
			// Exact data: the same h1 in bf16 and fp32, rounded differently by the activation.
			name:  "dtype",
			first: func(t *testing.T) *moe.Case { return twoExperts(t, splitIDs(16, 5), false, true) },
			steps: []memoStep{
				{name: "bf16", mutate: same},
				{name: "fp32", mutate: func(_ *testing.T, c *moe.Case) *moe.Case { c.DType = moe.FP32; return nil }},
				{name: "bf16-again", mutate: func(_ *testing.T, c *moe.Case) *moe.Case { c.DType = moe.BF16; return nil }},
			},
			hits: []int{memoGemm1, memoAct},
		},
		memoScenario{
			// Exact GEMMs and activation backward (small integers), so that the weight
			// gradients read the same rows with fault AccumInDtype as without it.
			name:  "accum",
			first: func(t *testing.T) *moe.Case { return twoExperts(t, splitIDs(16, 5), false, true) },
			steps: []memoStep{
				{name: "plain", mutate: same},
				{name: "accum-in-dtype", mutate: same, faults: "accum-in-dtype"},
			},
			hits: []int{memoWgrad2, memoWgrad1},
		},
		memoScenario{
			// X = 0: h1 is the bias, gate 128 (expf(−128) is 0 in float32, so act = 128·up,
			// exact in every dtype); d_h2 = dY, bf16 values of 9 bits in all: the weight
			// gradient dW2 reads the same rows in bf16 and fp32, and rounds its sums differently.
			name: "wgrad-dtype",
			first: func(t *testing.T) *moe.Case {
				c := twoExperts(t, splitIDs(16, 5), false, true)
				for i := range c.X {
					c.X[i], c.DY[i] = 0, 1+float64(i%11)/128
				}
				for e := 0; e < c.E; e++ {
					for j := 0; j < c.I; j++ {
						c.B1[e*2*c.I+c.GateCol(j)], c.B1[e*2*c.I+c.UpCol(j)] = 128, float64(j%5+1)
					}
				}
				if err := c.Validate(moe.Limits{}); err != nil {
					t.Fatal(err)
				}
				return c
			},
			steps: []memoStep{
				{name: "bf16", mutate: same},
				{name: "fp32", mutate: func(_ *testing.T, c *moe.Case) *moe.Case { c.DType = moe.FP32; return nil }},
			},
			hits: []int{memoWgrad2},
		},
	)
	// Shapes growing and shrinking on the same Backends (T alone keeps the weights converted).
	var shapes []memoStep
	for i, d := range []struct{ T, H, I, E int }{{24, 16, 12, 4}, {40, 16, 12, 4}, {8, 16, 12, 4}, {24, 20, 12, 4}, {24, 16, 12, 6}, {24, 16, 8, 4}, {24, 16, 12, 4}} {
		cfg := memoCfg
		cfg.T, cfg.H, cfg.I, cfg.E = d.T, d.H, d.I, d.E
		shapes = append(shapes, memoStep{name: fmt.Sprintf("shape-%d", i), mutate: func(t *testing.T, _ *moe.Case) *moe.Case {
			return makeCase(t, cfg, routeRandom, moe.Normal, 9)
		}})
	}
	scenarios = append(scenarios, memoScenario{
		name:  "shapes",
		first: func(t *testing.T) *moe.Case { return makeCase(t, memoCfg, routeRandom, moe.Normal, 9) },
		steps: shapes,
		hits:  []int{memoGemm1, memoWgrad1, memoActBack},
	})

	type memoRun struct {
		memoScenario
		par int // the memo Backend's workers
	}
	var runs []memoRun
	for _, sc := range scenarios {
		for _, par := range []int{1, 3} {
			sc.name = fmt.Sprintf("%s/par=%d", sc.name, par)
			runs = append(runs, memoRun{sc, par})
		}
	}
	for _, r := range runs {
		sc := r.memoScenario
		t.Run(sc.name, func(t *testing.T) {
			memoed, twin := New(Options{Workers: r.par}), New(Options{Workers: 1})
			memoed.minWork = 1 // par > 1: every stage split, the memo's copies into split buffers
			twin.noMemo = true
			c := sc.first(t)
			n := 0
			for _, s := range sc.steps {
				if nc := s.mutate(t, c); nc != nil {
					c = nc
				}
				set, err := fault.ParseSet(s.faults)
				if err != nil {
					t.Fatal(err)
				}
				if s.forget {
					if err := memoed.Forget(); err != nil {
						t.Fatal(err)
					}
					if err := twin.Forget(); err != nil {
						t.Fatal(err)
					}
				}
				for _, p := range append(gpu.Poisons(), gpu.PoisonStale) {
					n++
					opts := gpu.RunOptions{Poison: p, PoisonSeed: uint64(n), Stages: n%2 == 0}
					got, gerr := memoed.RunFaults(t.Context(), c, opts, set)
					want, werr := twin.RunFaults(t.Context(), c, opts, set)
					if gerr != nil || werr != nil { // (every step's case is valid)
						t.Fatalf("%s, poison %s: error %v, without the memo %v", s.name, p, gerr, werr)
					}
					if d := bitDiff(got, want); d != "" {
						t.Fatalf("%s, poison %s: %s", s.name, p, d)
					}
					if d := stageDiff(got.Stages, want.Stages); d != "" {
						t.Fatalf("%s, poison %s: %s", s.name, p, d)
					}
					if n%3 == 0 {
						memoed.Recycle(got)
						twin.Recycle(want)
					}
				}
				if s.forget && memoed.st.memo.used() > maxMemo {
					t.Fatalf("%s: the memo holds %d elements, over maxMemo %d", s.name, memoed.st.memo.used(), maxMemo)
				}
			}
			m := &memoed.st.memo
			for _, slot := range sc.hits {
				if m.hits[slot] == 0 {
					t.Errorf("memo slot %d: no hit in %d runs (%d misses)", slot, n, m.misses[slot])
				}
			}
			if tw := &twin.st.memo; tw.hits != [memoSlots]int{} || tw.misses != [memoSlots]int{} {
				t.Errorf("the Backend without the memo used it: hits %v, misses %v", tw.hits, tw.misses)
			}
		})
	}
}

// TestMemoBounded: the memo's entries never hold more than its limit (maxMemo, lowered here
// so that a small case passes it): a stage whose entry would not fit is computed every Run,
// with the results of a Backend without the memo; Forget drops every entry.
func TestMemoBounded(t *testing.T) {
	if (&memo{}).limit != 0 {
		t.Fatal("a memo's zero limit must mean maxMemo")
	}
	c := makeCase(t, memoCfg, routeRandom, moe.Normal, 3)
	for _, limit := range []int{1, 600, 2000, 5000} {
		t.Run(fmt.Sprintf("limit=%d", limit), func(t *testing.T) {
			memoed, twin := New(Options{}), New(Options{})
			memoed.st.memo.limit = limit
			twin.noMemo = true
			for i, p := range gpu.Poisons() {
				opts := gpu.RunOptions{Poison: p, PoisonSeed: uint64(i), Stages: true}
				got, want := run(t, memoed, c, opts), run(t, twin, c, opts)
				if d := bitDiff(got, want); d != "" {
					t.Fatalf("poison %s: %s", p, d)
				}
				if d := stageDiff(got.Stages, want.Stages); d != "" {
					t.Fatalf("poison %s: %s", p, d)
				}
				if u := memoed.st.memo.used(); u > limit {
					t.Fatalf("poison %s: the memo holds %d elements, over its limit %d", p, u, limit)
				}
			}
			m := &memoed.st.memo
			hits := 0
			for _, h := range m.hits {
				hits += h
			}
			if limit == 1 && hits != 0 {
				t.Errorf("limit 1: %d hits, want none (no entry fits)", hits)
			}
			if limit == 5000 && hits == 0 {
				t.Errorf("limit 5000: no hit")
			}
			if err := memoed.Forget(); err != nil {
				t.Fatal(err)
			}
			for i := range m.slots {
				if m.slots[i].ok {
					t.Fatalf("Forget kept memo slot %d", i)
				}
			}
		})
	}
}

// TestMemoKeepPolicy: a Run stores its computations when its case's X is the previous Run's
// (a rerun) or after Forget, and a case run once stores nothing: the entries of the case run
// again survive it and serve its next Run. Outputs bitwise those of a Backend without the
// memo throughout.
func TestMemoKeepPolicy(t *testing.T) {
	a := makeCase(t, memoCfg, routeRandom, moe.Normal, 11)
	// other: a derived case (its own X, a's weights, which load does not convert again;
	// a case with other weights converts them, and the GEMM entries of a then miss).
	other := a.Clone()
	for i := range other.X {
		other.X[i] = -other.X[i]
	}
	memoed, twin := New(Options{}), New(Options{})
	twin.noMemo = true
	m := &memoed.st.memo
	hits := func() int {
		n := 0
		for _, h := range m.hits {
			n += h
		}
		return n
	}
	stored := func() int {
		n := 0
		for i := range m.slots {
			if m.slots[i].ok {
				n++
			}
		}
		return n
	}
	for i, s := range []struct {
		name          string
		c             *moe.Case
		forget        bool
		hits, entries int // after the Run: hits gained, entries held
	}{
		{name: "first-run-of-a-fresh-backend", c: a, hits: 0, entries: 0},
		{name: "rerun", c: a, hits: 0, entries: memoSlots},
		{name: "rerun-hits", c: a, hits: memoSlots, entries: memoSlots},
		// (its GEMM 2 dgrad reads d_h2 = dY·rw and W2, a's: it hits)
		{name: "run-once", c: other, hits: 1, entries: memoSlots},
		{name: "back-to-the-rerun", c: a, hits: memoSlots, entries: memoSlots},
		{name: "a-copy-hits", c: a.Clone(), hits: memoSlots, entries: memoSlots},
		{name: "after-forget", c: other, forget: true, hits: 0, entries: memoSlots},
		{name: "after-forget-hits", c: other.Clone(), hits: memoSlots, entries: memoSlots},
	} {
		if s.forget {
			if err := memoed.Forget(); err != nil {
				t.Fatal(err)
			}
			if err := twin.Forget(); err != nil {
				t.Fatal(err)
			}
		}
		h0 := hits()
		opts := gpu.RunOptions{Poison: gpu.Poisons()[i%len(gpu.Poisons())], PoisonSeed: uint64(i)}
		got, want := run(t, memoed, s.c, opts), run(t, twin, s.c, opts)
		if d := bitDiff(got, want); d != "" {
			t.Fatalf("%s: %s", s.name, d)
		}
		if h := hits() - h0; h != s.hits {
			t.Errorf("%s: %d memo hits, want %d", s.name, h, s.hits)
		}
		if n := stored(); n != s.entries {
			t.Errorf("%s: %d memo entries, want %d", s.name, n, s.entries)
		}
	}
}
