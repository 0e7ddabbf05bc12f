package props_test

import (
	"context"
	"github.com/moecheck/moecheck/internal/fault"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/props"
)

// TestSimConforms: the correct sim backend passes the whole suite.
func TestSimConforms(t *testing.T) {
	props.Verify(t, sim.New(sim.Options{}), props.VerifyOptions{New: func() (gpu.Backend, error) { return sim.New(sim.Options{}), nil }})
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
	res, err := props.Mutants(context.Background(), b, props.MutantOptions{NoStages: noStages,
		New: func() (gpu.Backend, error) { return sim.New(sim.Options{}), nil }}, nil) // the default budget
	routing := map[fault.Fault]bool{fault.ClampSentinel: true, fault.HistogramSentinel: true, fault.ExclusiveOffsets: true,
		fault.SentinelWrap: true, fault.EPNoRankOffset: true}
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
			// issue 4: a routing bug must shrink to T ≤ 4 and E ≤ 4
			if routing[r.Fault.Fault] && (c.T > 4 || c.E > 4) {
				t.Errorf("mutant %s: shrunk only to %s, want T ≤ 4 and E ≤ 4", r.Fault.Name, sz)
			}
		} else if routing[r.Fault.Fault] {
			t.Errorf("mutant %s: no shrunk case", r.Fault.Name)
		}
		t.Logf("mutant %-22s caught by %-20s after %4d cases %8v; shrunk: %s", r.Fault.Name, r.Property, r.Cases, r.Elapsed.Round(time.Millisecond), sz)
	}
}
