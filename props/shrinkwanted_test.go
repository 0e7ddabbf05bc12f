package props

import (
	"context"
	"testing"

	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
)

// TestShrinkStopsWhenUnwanted: a shrink stops, keeping the case as it stands, once its
// predicate says the case is no longer wanted — a lower case of the run failed after this
// one's shrink began, so the run ends before it. With --jobs N every job's case can fail at
// once (a fault on every case); before the predicate was asked between candidates, the
// shrinks of the cases past the first failure ran to the end beside the one that counts,
// on a shared CUDA worker that each crash-fault candidate restarted (moecheck mutants
// --backend cuda --jobs 8 --faults crash took minutes instead of seconds). Regression test.
func TestShrinkStopsWhenUnwanted(t *testing.T) {
	env := &Env{Backend: sim.New(sim.Options{}), Faults: fault.Of(fault.MaskAfterWeight)}
	cfg := RunConfig{Seed: 4, MaxShrinks: 40, Properties: []Property{mustByName(t, "matches")}}
	for _, tc := range []struct {
		name      string
		wanted    func() func() bool
		wantTries func(int) bool
	}{
		{"shrink-wanted/always", func() func() bool { return func() bool { return true } }, func(n int) bool { return n > 0 }},
		{"shrink-wanted/only-to-start", func() func() bool {
			first := true
			return func() bool { ok := first; first = false; return ok }
		}, func(n int) bool { return n == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 40 {
				co := runCase(context.Background(), cfg, env, cfg.Properties, i, tc.wanted())
				if co.err != nil {
					t.Fatal(co.err)
				}
				if co.cr.Pass {
					continue
				}
				if co.cr.Shrunk == nil {
					t.Fatalf("case %d fails but was not shrunk at all (the predicate said yes to start)", i)
				}
				if n := co.cr.Shrunk.Tries; !tc.wantTries(n) {
					t.Fatalf("case %d: %d shrink candidates tried", i, n)
				}
				return
			}
			t.Fatal("no failing case in 40 (mask-after-weight)")
		})
	}
}

func mustByName(t *testing.T, name string) Property {
	t.Helper()
	p, err := ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
