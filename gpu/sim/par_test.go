package sim

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
)

// stageDiff returns "" when a and b carry bitwise identical stages (or both none), else the
// first difference.
func stageDiff(a, b *gpu.Stages) string {
	if (a == nil) != (b == nil) {
		return "stages present in one result only"
	}
	if a == nil {
		return ""
	}
	for n, p := range []struct {
		name string
		x, y []float32
	}{{"xs", a.Xs, b.Xs}, {"h1", a.H1, b.H1}, {"act", a.Act, b.Act}, {"h2", a.H2, b.H2}, {"o", a.O, b.O},
		{"d_o", a.DO, b.DO}, {"d_h2", a.DH2, b.DH2}, {"d_act", a.DAct, b.DAct}, {"d_h1", a.DH1, b.DH1}, {"d_xs", a.DXs, b.DXs}} {
		if len(p.x) != len(p.y) {
			return fmt.Sprintf("stage %d %s: %d vs %d values", n, p.name, len(p.x), len(p.y))
		}
		for i := range p.x {
			if math.Float32bits(p.x[i]) != math.Float32bits(p.y[i]) {
				return fmt.Sprintf("stage %s[%d]: %#08x vs %#08x", p.name, i, math.Float32bits(p.x[i]), math.Float32bits(p.y[i]))
			}
		}
	}
	for i := range a.Perm {
		if a.Perm[i] != b.Perm[i] {
			return fmt.Sprintf("perm[%d]: %d vs %d", i, a.Perm[i], b.Perm[i])
		}
	}
	return ""
}

// TestParallelBitwise runs every poison case on a single-goroutine Backend and on one that
// splits every stage as finely as it can (ranges of one index, 4 goroutines; and ranges of 7
// operations on 3), under NaN poison and every other policy and, case by case, each fault of
// the catalog (Crash aside), with stages, and
// requires bitwise identical results and stages: splitting a stage over goroutines must not
// change any element's operations or their order. The cases include odd shapes, empty
// experts, all-sentinel batches, NaN/Inf data and NaN poison; each Backend runs each case
// twice so that PoisonStale reads buffers a previous Run left.
func TestParallelBitwise(t *testing.T) {
	var faults []fault.Fault
	for _, fi := range fault.Catalog() {
		if fi.Fault != fault.Crash {
			faults = append(faults, fi.Fault)
		}
	}
	cases := poisonCases(t)
	// Larger odd shapes: several goroutines' ranges per stage even at the default threshold.
	for i, cfg := range []moe.Config{
		{T: 131, H: 67, I: 45, E: 7, K: 3, DType: moe.BF16, Bias: true, EP: moe.EP{World: 3, Rank: 2}},
		{T: 97, H: 129, I: 33, E: 5, K: 5, DType: moe.FP16, Act: moe.GptOss, Layout: moe.Transposed},
	} {
		for k := routingKind(0); k < numRoutingKinds; k++ {
			cases = append(cases, makeCase(t, cfg, k, moe.Normal, uint64(2000+10*i)+uint64(k)))
		}
	}
	poisons := gpu.Poisons()
	for _, sp := range []split{{Workers: 4, MinWork: 1}, {Workers: 3, MinWork: 7}} {
		serial, par := New(Options{Workers: 1}), New(Options{}) // serial through the option jobs use
		par.workers, par.minWork = sp.Workers, sp.MinWork
		for n, c := range cases {
			// NaN poison on every case (where NaNs meet, their signs tell the kernels apart),
			// then the others in turn; a fault on every other case.
			for _, pol := range []gpu.Poison{gpu.PoisonNaN, poisons[n%len(poisons)]} {
				opts := gpu.RunOptions{Poison: pol, PoisonSeed: uint64(n), Stages: true}
				name := fmt.Sprintf("w=%d/min=%d/case-%d/%s/%s", sp.Workers, sp.MinWork, n, c.Config, pol)
				var fs fault.Set
				if n%2 == 0 {
					f := faults[(n/2)%len(faults)]
					fs = fault.Of(f)
					name += "/" + f.String()
				}
				for rep := 0; rep < 2; rep++ {
					want, err := serial.RunFaults(context.Background(), c, opts, fs)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					got, err := par.RunFaults(context.Background(), c, opts, fs)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if d := bitDiff(want, got); d != "" {
						t.Fatalf("%s run %d: %s", name, rep, d)
					}
					if d := stageDiff(want.Stages, got.Stages); d != "" {
						t.Fatalf("%s run %d: %s", name, rep, d)
					}
				}
			}
		}
	}
}

// TestParFor checks that parFor covers [0, n) exactly once, whatever the split.
func TestParFor(t *testing.T) {
	for _, tc := range []struct{ workers, minWork, n, cost int }{
		{1, 1, 10, 1}, {4, 1, 0, 1}, {4, 1, 1, 1}, {4, 1, 17, 1}, {3, 5, 100, 2}, {2, minParWork, 1000, 1}, {8, 7, 1 << 12, 3},
	} {
		t.Run(fmt.Sprintf("w=%d/min=%d/n=%d/cost=%d", tc.workers, tc.minWork, tc.n, tc.cost), func(t *testing.T) {
			seen := make([]int32, tc.n)
			parFor(split{Workers: tc.workers, MinWork: tc.minWork}, tc.n, tc.cost, 0, func(_, lo, hi int) {
				if lo >= hi || lo < 0 || hi > tc.n {
					t.Errorf("range [%d, %d) of %d", lo, hi, tc.n)
					return
				}
				for i := lo; i < hi; i++ {
					seen[i]++ // ranges are disjoint: no two goroutines write one element
				}
			})
			for i, s := range seen {
				if s != 1 {
					t.Fatalf("index %d covered %d times", i, s)
				}
			}
		})
	}
}
