package oracle_test

import (
	"context"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/internal/fault"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// TestRealisticSizeFaults: at a realistic hidden size (H = 256, I = 128, K = 4) the oracle
// catches the precision and semantic faults the bound must be tight enough for — a GEMM
// accumulated in bf16, the K-slot combine in bf16, one expert using its neighbour's weights,
// one token's row left at zero — and passes the correct path. Stage-local checks are
// required to catch them; the end-to-end result (black-box mode) is logged for the record.
func TestRealisticSizeFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("realistic sizes")
	}
	for _, d := range []moe.DType{moe.BF16, moe.FP16} {
		cfg := moe.Config{T: 16, H: 256, I: 128, E: 4, K: 4, DType: d}
		c := casetest.Case(t, cfg, 3)
		b := sim.New(sim.Options{})
		for _, tc := range []struct {
			name  string
			fault fault.Fault
		}{{"correct", 0}, {"accum-in-dtype", fault.AccumInDtype}, {"combine-in-dtype", fault.CombineInDtype},
			{"neighbour-weights", fault.NeighbourWeights}, {"zero-token-row", fault.ZeroTokenRow}} {
			var faults fault.Set
			if tc.fault != 0 {
				faults = fault.Of(tc.fault)
			}
			res, err := fault.Run(context.Background(), b, c, gpu.RunOptions{Poison: gpu.PoisonNaN, Stages: true}, faults)
			if err != nil {
				t.Fatal(err)
			}
			local, err := oracle.Check(c, res, oracle.Options{})
			if err != nil {
				t.Fatal(err)
			}
			e2e, err := oracle.Check(c, res, oracle.Options{SkipStages: true})
			if err != nil {
				t.Fatal(err)
			}
			if tc.fault == 0 && (!local.Pass || !e2e.Pass) {
				t.Errorf("%s/%s: false alarm: %s / %s", d, tc.name, local.Summary(), e2e.Summary())
			}
			if tc.fault != 0 && local.Pass {
				t.Errorf("%s/%s: fault not caught with stages", d, tc.name)
			}
			t.Logf("%s %-18s with stages: %-60.60s | end-to-end only: %.60s", d, tc.name, local.Summary(), e2e.Summary())
		}
	}
}
