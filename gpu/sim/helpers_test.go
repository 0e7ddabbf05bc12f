package sim

import (
	"context"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"math"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// routingKind selects how a test case's routing is built.
type routingKind int

const (
	routeRandom       routingKind = iota // RandomGlobalRouting; the case carries Global
	routeLocal                           // RandomRouting only (no Global)
	routeAllSentinel                     // every slot a sentinel
	routeEmptyExperts                    // only experts 0 and E−1 (when E > 2, the rest are empty)
	routeDuplicate                       // each token's K slots all the same id
	routeSomeSentinel                    // every other token entirely sentinels
	routeKeepWeights                     // Global with KeepSentinelWeights
	numRoutingKinds
)

func (k routingKind) String() string {
	return [...]string{"random", "local", "all-sentinel", "empty-experts", "duplicate", "some-sentinel", "keep-weights"}[k]
}

// makeRouting builds routing of kind k for cfg from seed (the Global routing too when k uses one).
func makeRouting(t testing.TB, cfg moe.Config, k routingKind, seed uint64) (moe.Routing, *moe.GlobalRouting) {
	t.Helper()
	rng := moe.NewRand(seed)
	S, E := cfg.S(), cfg.E
	w := func() float64 { return cfg.DType.Round(1 - rng.Float64()) }
	switch k {
	case routeRandom, routeKeepWeights:
		r, g, err := moe.RandomGlobalRouting(cfg, seed)
		if err != nil {
			t.Fatal(err)
		}
		if k == routeKeepWeights {
			g.Options.KeepSentinelWeights = true
			if r, err = moe.FromGlobal(cfg, g.IDs, g.Weights, g.Options); err != nil {
				t.Fatal(err)
			}
		}
		return r, g
	case routeLocal:
		r, err := moe.RandomRouting(cfg, seed)
		if err != nil {
			t.Fatal(err)
		}
		return r, nil
	}
	r := moe.Routing{IDs: make([]int32, S), Weights: make([]float64, S)}
	for s := range r.IDs {
		tok := s / cfg.K
		var id int
		switch k {
		case routeAllSentinel:
			id = E
		case routeEmptyExperts:
			id = []int{0, E - 1}[rng.IntN(2)]
		case routeDuplicate:
			id = int((uint64(tok)*2654435761 + seed) % uint64(E+1))
		case routeSomeSentinel:
			id = rng.IntN(E)
			if tok%2 == 1 {
				id = E
			}
		}
		r.IDs[s] = int32(id)
		if id < E {
			r.Weights[s] = w()
		}
	}
	return r, nil
}

// makeCase generates a case of cfg with routing kind k and data mode m from seed.
func makeCase(t testing.TB, cfg moe.Config, k routingKind, m moe.DataMode, seed uint64) *moe.Case {
	t.Helper()
	r, g := makeRouting(t, cfg, k, seed)
	c, err := moe.Generate(cfg, r, seed, m)
	if err != nil {
		t.Fatal(err)
	}
	c.Global = g
	if err := c.Validate(moe.Limits{}); err != nil {
		t.Fatalf("%s: %v", cfg, err)
	}
	return c
}

// randomConfig draws a small config (every activation, layout, dtype, bias and EP setting).
func randomConfig(seed uint64) moe.Config {
	rng := moe.NewRand(seed)
	cfg := moe.Config{
		T: 1 + rng.IntN(9), H: 1 + rng.IntN(12), I: 1 + rng.IntN(9), E: 1 + rng.IntN(6), K: 1 + rng.IntN(4),
		Act: moe.Activation(rng.IntN(2)), Layout: moe.Layout(rng.IntN(2)),
		DType: moe.DTypes()[rng.IntN(3)], Bias: rng.IntN(2) == 0,
	}
	if w := rng.IntN(4); w > 1 {
		cfg.EP = moe.EP{World: w, Rank: rng.IntN(w)}
	}
	if rng.IntN(8) == 0 { // now and then enough rows for several row tiles per expert
		cfg.T = 17 + rng.IntN(40)
	}
	return cfg
}

// run runs c on b and fails the test on an error.
func run(t testing.TB, b *Backend, c *moe.Case, opts gpu.RunOptions) *gpu.Result {
	t.Helper()
	return runFaults(t, b, c, opts, 0)
}

// runFaults is run with faults switched on.
func runFaults(t testing.TB, b *Backend, c *moe.Case, opts gpu.RunOptions, fs fault.Set) *gpu.Result {
	t.Helper()
	r, err := b.RunFaults(context.Background(), c, opts, fs)
	if err != nil {
		t.Fatalf("%s: %v", c.Config, err)
	}
	return r
}

// tensors lists a result's tensors by name.
func tensors(r *gpu.Result) []struct {
	name string
	v    []float32
} {
	return []struct {
		name string
		v    []float32
	}{{"Y", r.Y}, {"DX", r.DX}, {"DW1", r.DW1}, {"DB1", r.DB1}, {"DW2", r.DW2}, {"DB2", r.DB2}, {"DRW", r.DRW}}
}

// bitDiff returns "" when a and b are bitwise identical, else the first difference.
func bitDiff(a, b *gpu.Result) string {
	ta, tb := tensors(a), tensors(b)
	for n := range ta {
		x, y := ta[n].v, tb[n].v
		if len(x) != len(y) {
			return fmt.Sprintf("%s: %d vs %d values", ta[n].name, len(x), len(y))
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return fmt.Sprintf("%s[%d]: %v (%#08x) vs %v (%#08x)", ta[n].name, i, x[i], math.Float32bits(x[i]), y[i], math.Float32bits(y[i]))
			}
		}
	}
	return ""
}

// nonFinite reports whether v holds a NaN or an Inf.
func nonFinite(v []float32) bool {
	for _, x := range v {
		if x != x || math.IsInf(float64(x), 0) {
			return true
		}
	}
	return false
}
