package props_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/props"
)

var mutantsH256 = flag.Bool("mutants-h256", false, "run TestMutantsAnyH256 (the catalog under contract any at H ≥ 256; minutes)")

// TestMutantsAnyH256 measures which catalog faults the suite catches under contract any on
// cases with H ≥ 256 (docs/oracle.md §9.4). Opt-in (-mutants-h256): it reports, it asserts
// only that the faults outside any's freedoms are caught.
func TestMutantsAnyH256(t *testing.T) {
	if !*mutantsH256 {
		t.Skip("opt-in: -mutants-h256")
	}
	ct := contract.Any()
	res, err := props.Mutants(context.Background(), sim.New(sim.Options{}), props.MutantOptions{Contract: &ct,
		Cases: 2000, Timeout: 60 * time.Second, Gen: props.GenOptions{MinH: 256},
		New: func() (gpu.Backend, error) { return sim.New(sim.Options{}), nil }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	legal := map[string]bool{"combine-in-dtype": true, "nondeterministic-sum": true}
	for _, r := range res {
		t.Logf("H256/any: %-22s caught %-5v by %-20s after %4d cases %v", r.Fault.Name, r.Caught, r.Property, r.Cases, r.Elapsed.Round(time.Millisecond))
		if !r.Caught && !legal[r.Fault.Name] {
			t.Errorf("H256/any: %s not caught", r.Fault.Name)
		}
	}
}
