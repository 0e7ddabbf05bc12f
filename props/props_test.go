package props_test

import (
	"context"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/props"
)

// TestSimConforms: the correct sim backend passes the whole suite.
func TestSimConforms(t *testing.T) {
	props.Verify(t, sim.New(sim.Options{}), props.VerifyOptions{})
}

// TestSpecRoundTrip: the one-line spec form parses back to the same case.
func TestSpecRoundTrip(t *testing.T) {
	for i := 0; i < 200; i++ {
		s, _ := props.SpecAt(7, i, props.GenOptions{})
		p, err := props.ParseSpec(s.String())
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if p.String() != s.String() {
			t.Fatalf("case %d: %q → %q", i, s, p)
		}
	}
}

// TestMutants: every fault of the catalog is caught by the default suite within its budget,
// and a routing fault's failing case shrinks small.
func TestMutants(t *testing.T) {
	for _, mode := range []struct {
		name     string
		noStages bool
	}{{"stages", false}, {"black-box", true}} {
		t.Run(mode.name, func(t *testing.T) { testMutants(t, mode.noStages) })
	}
}

func testMutants(t *testing.T, noStages bool) {
	b := sim.New(sim.Options{})
	res, err := props.Mutants(context.Background(), b, props.MutantOptions{Cases: 3000, Timeout: 60 * time.Second, NoStages: noStages}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.Caught {
			t.Errorf("mutant %s: not caught in %d cases (%v)", r.Fault.Name, r.Cases, r.Elapsed)
			continue
		}
		sz := ""
		if r.Shrunk != nil {
			c := r.Shrunk.Spec.Config()
			sz = c.String()
		}
		t.Logf("mutant %-22s caught by %-20s after %4d cases %8v; shrunk: %s", r.Fault.Name, r.Property, r.Cases, r.Elapsed.Round(time.Millisecond), sz)
	}
	_ = gpu.Catalog
}
