package sim

import (
	"context"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/poison"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// epConfig has sentinels (rank 1 of 2), a bias, K = 3 and enough rows for a partial tile.
var epConfig = moe.Config{T: 24, H: 16, I: 8, E: 4, K: 3, DType: moe.BF16, Bias: true, EP: moe.EP{World: 2, Rank: 1}}

// sentinelSlots returns the slots with the sentinel id.
func sentinelSlots(c *moe.Case) []int {
	var s []int
	for i, id := range c.Routing.IDs {
		if int(id) == c.E {
			s = append(s, i)
		}
	}
	return s
}

// faultCheck judges the faulty result bad against the correct result good (same poison).
type faultCheck func(t *testing.T, c *moe.Case, good, bad *gpu.Result)

// drwAtSentinels requires some sentinel slot's DRW to be non-zero (finite or, with nan, NaN).
func drwAtSentinels(nan bool) faultCheck {
	return func(t *testing.T, c *moe.Case, good, bad *gpu.Result) {
		ss := sentinelSlots(c)
		if len(ss) == 0 {
			t.Fatal("case has no sentinel slot")
		}
		hit := false
		for _, s := range ss {
			if good.DRW[s] != 0 {
				t.Fatalf("correct path: DRW[%d] = %v", s, good.DRW[s])
			}
			v := bad.DRW[s]
			if nan && v != v || !nan && v != 0 && v == v {
				hit = true
			}
		}
		if !hit {
			t.Fatalf("no sentinel slot's DRW is %s", map[bool]string{true: "NaN", false: "non-zero"}[nan])
		}
	}
}

// nonFiniteIn requires tensor name of bad to hold a NaN or Inf, and good not to.
func nonFiniteIn(name string) faultCheck {
	return func(t *testing.T, c *moe.Case, good, bad *gpu.Result) {
		for n, tn := range tensors(bad) {
			if tn.name == name {
				if nonFinite(tensors(good)[n].v) {
					t.Fatalf("correct path: %s not finite", name)
				}
				if !nonFinite(tn.v) {
					t.Fatalf("%s is finite", name)
				}
				return
			}
		}
		t.Fatalf("no tensor %s", name)
	}
}

// differs requires the results to differ.
func differs(t *testing.T, c *moe.Case, good, bad *gpu.Result) {
	if bitDiff(good, bad) == "" {
		t.Fatal("fault left the result unchanged")
	}
}

func TestFaults(t *testing.T) {
	ep := func(k routingKind, seed uint64) *moe.Case { return makeCase(t, epConfig, k, moe.Normal, seed) }
	gptoss := epConfig
	gptoss.Act, gptoss.Layout = moe.GptOss, moe.Transposed
	wide := moe.Config{T: 16, H: 64, I: 32, E: 2, K: 6, DType: moe.BF16}
	noEP := epConfig
	noEP.EP = moe.EP{}
	for _, tc := range []struct {
		name   string
		fault  fault.Fault
		c      *moe.Case
		poison gpu.Poison
		check  faultCheck
	}{
		{"clamp-sentinel/drw", fault.ClampSentinel, ep(routeRandom, 1), gpu.PoisonNaN, drwAtSentinels(false)},
		{"mask-after-weight/drw-nan", fault.MaskAfterWeight, ep(routeRandom, 2), gpu.PoisonNaN, drwAtSentinels(true)},
		{"mask-after-weight/signature", fault.MaskAfterWeight, ep(routeSomeSentinel, 2), gpu.PoisonSignature, func(t *testing.T, c *moe.Case, good, bad *gpu.Result) {
			s := sentinelSlots(c)[0]
			if b, ok := poison.Of(bad.DRW[s]); !ok || b != gpu.BufH2 {
				t.Fatalf("DRW[%d] = %#x, want h2's signature", s, bad.DRW[s])
			}
		}},
		{"no-mask-up-dgrad/dx", fault.NoMaskUpDgrad, ep(routeRandom, 3), gpu.PoisonNaN, nonFiniteIn("DX")},
		{"no-mask-up-dgrad/dx-signature", fault.NoMaskUpDgrad, ep(routeSomeSentinel, 3), gpu.PoisonSignature, func(t *testing.T, c *moe.Case, good, bad *gpu.Result) {
			tok := sentinelSlots(c)[0] / c.K
			if b, ok := poison.Of(bad.DX[tok*c.H]); !ok || b != gpu.BufDXs {
				t.Fatalf("DX[%d,0] = %v, want d_xs's signature", tok, bad.DX[tok*c.H])
			}
		}},
		{"no-mask-down-dgrad/db1", fault.NoMaskDownDgrad, ep(routeRandom, 4), gpu.PoisonNaN, nonFiniteIn("DB1")},
		{"no-mask-down-dgrad/db1-neg-inf-gptoss", fault.NoMaskDownDgrad, makeCase(t, gptoss, routeRandom, moe.Normal, 4), gpu.PoisonNegInf, nonFiniteIn("DB1")},
		{"empty-expert-wgrad/signature", fault.EmptyExpertWgrad, ep(routeEmptyExperts, 5), gpu.PoisonSignature, func(t *testing.T, c *moe.Case, good, bad *gpu.Result) {
			for e := 1; e < c.E-1; e++ { // experts 1..E−2 have no rows
				for j := 0; j < 2*c.I; j++ {
					for h := 0; h < c.H; h++ {
						if good.DW1[c.W1Index(e, j, h)] != 0 {
							t.Fatalf("correct path: dW1 of empty expert %d not zero", e)
						}
						if b, ok := poison.Of(bad.DW1[c.W1Index(e, j, h)]); !ok || b != gpu.BufDW1 {
							t.Fatalf("dW1[%d,%d,%d] = %v, want dW1's signature", e, j, h, bad.DW1[c.W1Index(e, j, h)])
						}
					}
				}
				if b, ok := poison.Of(bad.DW2[c.W2Index(e, 0, 0)]); !ok || b != gpu.BufDW2 {
					t.Fatalf("dW2[%d,0,0] = %v, want dW2's signature", e, bad.DW2[c.W2Index(e, 0, 0)])
				}
			}
		}},
		{"histogram-sentinel/drw", fault.HistogramSentinel, ep(routeRandom, 6), gpu.PoisonNaN, func(t *testing.T, c *moe.Case, good, bad *gpu.Result) {
			drwAtSentinels(false)(t, c, good, bad)
			if o := bad.Stages.Offsets; int(o[c.E-1]) != c.S() {
				t.Fatalf("offsets %v: last is not S = %d", o, c.S())
			}
		}},
		{"exclusive-offsets/y", fault.ExclusiveOffsets, ep(routeRandom, 7), gpu.PoisonZeros, func(t *testing.T, c *moe.Case, good, bad *gpu.Result) {
			differs(t, c, good, bad)
			if o := bad.Stages.Offsets; o[0] != 0 {
				t.Fatalf("exclusive offsets %v do not start at 0", o)
			}
		}},
		{"sentinel-wrap/drw", fault.SentinelWrap, ep(routeRandom, 8), gpu.PoisonNaN, drwAtSentinels(false)},
		{"sentinel-wrap/keep-weights-y", fault.SentinelWrap, ep(routeKeepWeights, 8), gpu.PoisonNaN, differs},
		{"sentinel-wrap/keep-weights-dw-last", fault.SentinelWrap, ep(routeKeepWeights, 8), gpu.PoisonNaN, func(t *testing.T, c *moe.Case, good, bad *gpu.Result) {
			// The wrapped sentinel rows (non-zero weights kept) add into expert E−1's dW2.
			blk := c.LenW2() / c.E
			if d := bitDiff(&gpu.Result{DW2: good.DW2[(c.E-1)*blk:]}, &gpu.Result{DW2: bad.DW2[(c.E-1)*blk:]}); d == "" {
				t.Fatal("dW2 of expert E−1 unchanged")
			}
		}},
		{"tail-stale-unmasked/keep-weights-dw-unchanged", fault.TailStaleUnmasked, ep(routeKeepWeights, 8), gpu.PoisonNaN, func(t *testing.T, c *moe.Case, good, bad *gpu.Result) {
			// Stale tail rows stay out of every wgrad (only the GEMMs write them).
			if d := bitDiff(&gpu.Result{DW1: good.DW1, DW2: good.DW2}, &gpu.Result{DW1: bad.DW1, DW2: bad.DW2}); d != "" {
				t.Fatalf("weight gradients changed: %s", d)
			}
			differs(t, c, good, bad)
		}},
		{"combine-in-dtype/y", fault.CombineInDtype, makeCase(t, wide, routeLocal, moe.Normal, 9), gpu.PoisonZeros, differs},
		{"accum-in-dtype/all", fault.AccumInDtype, makeCase(t, wide, routeLocal, moe.Normal, 10), gpu.PoisonZeros, differs},
		{"gate-up-swapped/y", fault.GateUpSwapped, ep(routeRandom, 11), gpu.PoisonZeros, differs},
		{"gate-up-swapped/gptoss", fault.GateUpSwapped, makeCase(t, gptoss, routeRandom, moe.Normal, 11), gpu.PoisonZeros, differs},
		{"ep-no-rank-offset/rank1", fault.EPNoRankOffset, ep(routeRandom, 12), gpu.PoisonZeros, differs},
		{"last-tile-dropped/nan", fault.LastTileDropped, makeCase(t, noEP, routeLocal, moe.Normal, 13), gpu.PoisonNaN, nonFiniteIn("Y")},
		{"last-tile-dropped/zeros", fault.LastTileDropped, makeCase(t, noEP, routeLocal, moe.Normal, 13), gpu.PoisonZeros, differs},
		{"tail-stale-unmasked/drw", fault.TailStaleUnmasked, ep(routeRandom, 14), gpu.PoisonNaN, drwAtSentinels(false)},
		{"neighbour-weights/y", fault.NeighbourWeights, ep(routeRandom, 15), gpu.PoisonZeros, differs},
		{"zero-token-row/y", fault.ZeroTokenRow, ep(routeSomeSentinel, 16), gpu.PoisonNaN, func(t *testing.T, c *moe.Case, good, bad *gpu.Result) {
			tok := -1
			for s, id := range c.Routing.IDs {
				if int(id) < c.E {
					tok = s / c.K
					break
				}
			}
			allZero := func(v []float32) bool {
				for _, x := range v {
					if x != 0 {
						return false
					}
				}
				return true
			}
			row := func(r *gpu.Result) []float32 { return r.Y[tok*c.H : (tok+1)*c.H] }
			if allZero(row(good)) || !allZero(row(bad)) {
				t.Fatalf("token %d: Y row %v (correct %v), want all zero", tok, row(bad), row(good))
			}
			good.Y, bad.Y = nil, nil
			if d := bitDiff(good, bad); d != "" {
				t.Fatalf("more than Y changed: %s", d)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := gpu.RunOptions{Poison: tc.poison, Stages: true}
			good := run(t, New(Options{}), tc.c, opts)
			bad := runFaults(t, New(Options{}), tc.c, opts, fault.Of(tc.fault))
			tc.check(t, tc.c, good, bad)
		})
	}

	t.Run("ep-no-rank-offset/no-global-no-effect", func(t *testing.T) {
		c := ep(routeLocal, 12)
		good := run(t, New(Options{}), c, gpu.RunOptions{})
		bad := runFaults(t, New(Options{}), c, gpu.RunOptions{}, fault.Of(fault.EPNoRankOffset))
		if d := bitDiff(good, bad); d != "" {
			t.Fatalf("without global routing the map does not run, yet: %s", d)
		}
	})
	t.Run("nondeterministic-sum/two-runs", func(t *testing.T) {
		// fp32: an fp32 sum of a few bf16 values is nearly always exact, so the order shows
		// only with fp32 values.
		cfg := wide
		cfg.DType = moe.FP32
		c := makeCase(t, cfg, routeLocal, moe.Normal, 17)
		b := New(Options{})
		fs := fault.Of(fault.NondeterministicSum)
		r1, r2 := runFaults(t, b, c, gpu.RunOptions{}, fs), runFaults(t, b, c, gpu.RunOptions{}, fs)
		if bitDiff(r1, r2) == "" {
			t.Fatal("two runs gave identical results")
		}
	})
	t.Run("nondeterministic-sum/other-cases-between", func(t *testing.T) {
		// Regression: the order followed a per-instance run counter, so a case's second run
		// depended on how many other cases the instance ran in between (with --jobs N: on
		// the scheduler). Now it is the case's own run count on the instance.
		cfg := wide
		cfg.DType = moe.FP32
		a, other := makeCase(t, cfg, routeLocal, moe.Normal, 17), makeCase(t, cfg, routeLocal, moe.Normal, 23)
		fs := fault.Of(fault.NondeterministicSum)
		alone := New(Options{})
		a1 := runFaults(t, alone, a, gpu.RunOptions{}, fs)
		a2 := runFaults(t, alone, a, gpu.RunOptions{}, fs)
		busy := New(Options{})
		b1 := runFaults(t, busy, a, gpu.RunOptions{}, fs)
		for range 2 {
			runFaults(t, busy, other, gpu.RunOptions{}, fs)
		}
		b2 := runFaults(t, busy, a, gpu.RunOptions{}, fs)
		if d := bitDiff(a1, b1); d != "" {
			t.Fatalf("first runs differ: %s", d)
		}
		if d := bitDiff(a2, b2); d != "" {
			t.Fatalf("the case's second run depends on the other cases run before it: %s", d)
		}
		if bitDiff(a1, a2) == "" {
			t.Fatal("the fault no longer changes the order from one run of a case to the next")
		}
	})
	t.Run("crash/case-error", func(t *testing.T) {
		_, err := New(Options{}).RunFaults(context.Background(), ep(routeRandom, 18), gpu.RunOptions{}, fault.Of(fault.Crash))
		ce, ok := gpu.AsCaseError(err)
		if !ok || ce.Kind != gpu.Crashed || ce.Detail != "simulated illegal address" {
			t.Fatalf("got %v, want a crash case error", err)
		}
	})
}

// TestFaultCombinations runs every fault set of one or two faults, and all faults at once
// (Crash aside), on varied cases and poisons: a combination must run, never error or panic,
// and two backends must agree (faults are deterministic, NondeterministicSum given the run
// index).
func TestFaultCombinations(t *testing.T) {
	var sets []fault.Set
	var all fault.Set
	for i, a := range fault.Catalog() {
		if a.Fault == fault.Crash {
			continue
		}
		all |= fault.Of(a.Fault)
		for _, b := range fault.Catalog()[i:] {
			if b.Fault != fault.Crash {
				sets = append(sets, fault.Of(a.Fault, b.Fault))
			}
		}
	}
	sets = append(sets, all)
	var cases []*moe.Case
	for seed := uint64(0); seed < 6; seed++ {
		cases = append(cases, makeCase(t, randomConfig(seed+300), routingKind(seed%uint64(numRoutingKinds)), moe.Normal, seed))
	}
	cases = append(cases, makeCase(t, epConfig, routeRandom, moe.Normal, 1))
	for _, set := range sets {
		t.Run(fmt.Sprintf("faults=%s", set), func(t *testing.T) {
			b1, b2 := New(Options{}), New(Options{})
			for i, c := range cases {
				opts := gpu.RunOptions{Poison: gpu.Poisons()[i%len(gpu.Poisons())], PoisonSeed: uint64(i), Stages: i%2 == 0}
				r1, r2 := runFaults(t, b1, c, opts, set), runFaults(t, b2, c, opts, set)
				if d := bitDiff(r1, r2); d != "" {
					t.Fatalf("case %d (%s): two backends differ: %s", i, c.Config, d)
				}
			}
		})
	}
}
