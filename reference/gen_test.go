package reference_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// smallCase draws a small random case that exercises the corners the proofs must cover:
// sentinel slots (some with non-zero weights), tokens whose slots are all sentinels, experts
// with no rows, duplicate ids in a token's top-k, EP ranks > 0, both activations, both
// layouts, biases on and off, every dtype. For gpt-oss, X is scaled up in half the cases so
// that GEMM 1's outputs cross the clamps at ±7.
func smallCase(t testing.TB, seed uint64) *moe.Case {
	t.Helper()
	rng := moe.NewRand(seed)
	cfg := moe.Config{
		T: 1 + rng.IntN(4), H: 1 + rng.IntN(4), I: 1 + rng.IntN(3), E: 1 + rng.IntN(4), K: 1 + rng.IntN(3),
		Act: moe.Activation(rng.IntN(2)), Layout: moe.Layout(rng.IntN(2)), DType: moe.DTypes()[rng.IntN(3)],
		Bias: rng.IntN(2) == 0,
	}
	if w := rng.IntN(3); w > 0 {
		cfg.EP = moe.EP{World: w + 1, Rank: rng.IntN(w + 1)}
	}
	var r moe.Routing
	var global *moe.GlobalRouting
	if rng.IntN(4) == 0 {
		// moe's own uniform routing in global ids, mapped to this rank.
		var err error
		r, global, err = moe.RandomGlobalRouting(cfg, seed)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	} else {
		r = smallRouting(rng, cfg)
	}
	mode := moe.Normal
	if rng.IntN(5) == 0 {
		mode = moe.Integer
	}
	c, err := moe.Generate(cfg, r, seed, mode)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	c.Global = global
	if cfg.Act == moe.GptOss && rng.IntN(2) == 0 {
		for i := range c.X {
			c.X[i] *= 8 // a power of two: stays representable in every dtype
		}
	}
	return c
}

// smallRouting draws local routing with a per-case sentinel rate (0, ½ or 1 for a token),
// ids drawn from a random subset of the experts (so some get no rows), forced duplicates,
// and weights of either sign, zero included; sentinel slots keep a random weight half the
// time (the contract: a sentinel contributes nothing whatever its weight).
func smallRouting(rng *rand.Rand, cfg moe.Config) moe.Routing {
	S := cfg.S()
	r := moe.Routing{IDs: make([]int32, S), Weights: make([]float64, S)}
	used := 1 + rng.IntN(cfg.E) // experts [0, used) only: the rest are empty
	sentRate := []float64{0, 0.5, 0.25}[rng.IntN(3)]
	keepSentinelWeight := rng.IntN(2) == 0
	for t := 0; t < cfg.T; t++ {
		allSentinel := rng.IntN(5) == 0
		for k := 0; k < cfg.K; k++ {
			s := t*cfg.K + k
			switch {
			case allSentinel || rng.Float64() < sentRate:
				r.IDs[s] = int32(cfg.E)
			case k > 0 && rng.IntN(3) == 0 && r.IDs[s-1] != int32(cfg.E):
				r.IDs[s] = r.IDs[s-1] // duplicate id in the token's top-k
			default:
				r.IDs[s] = int32(rng.IntN(used))
			}
			w := cfg.DType.Round(2*rng.Float64() - 1)
			if rng.IntN(8) == 0 {
				w = 0
			}
			if r.IDs[s] == int32(cfg.E) && !keepSentinelWeight {
				w = 0
			}
			r.Weights[s] = w
		}
	}
	return r
}

// coverage counts the corners a set of cases reached.
type coverage map[string]int

func (cv coverage) add(c *moe.Case) {
	p, _ := c.Plan()
	for _, n := range p.Counts {
		if n == 0 {
			cv["empty expert"]++
			break
		}
	}
	if p.Rows < c.S() {
		cv["sentinel"]++
	}
	for s, id := range c.Routing.IDs {
		if int(id) == c.E && c.Routing.Weights[s] != 0 {
			cv["sentinel with weight"]++
			break
		}
	}
	dup, allSent := false, false
	for t := 0; t < c.T; t++ {
		all := true
		for k := 0; k < c.K; k++ {
			s := t*c.K + k
			if int(c.Routing.IDs[s]) != c.E {
				all = false
			}
			for k2 := 0; k2 < k; k2++ {
				if id := c.Routing.IDs[t*c.K+k2]; id == c.Routing.IDs[s] && int(id) != c.E {
					dup = true
				}
			}
		}
		allSent = allSent || all
	}
	if dup {
		cv["duplicate id"]++
	}
	if allSent {
		cv["all-sentinel token"]++
	}
	if c.EP.Rank > 0 {
		cv["EP rank > 0"]++
	}
	cv[fmt.Sprintf("%s/%s/bias=%v", c.Act, c.Layout, c.Bias)]++
	cv[c.DType.String()]++
}

// require fails unless every named corner was reached.
func (cv coverage) require(t *testing.T) {
	t.Helper()
	want := []string{"empty expert", "sentinel", "sentinel with weight", "duplicate id", "all-sentinel token", "EP rank > 0", "bf16", "fp16", "fp32"}
	for _, a := range []moe.Activation{moe.SwiGLU, moe.GptOss} {
		for _, l := range []moe.Layout{moe.Standard, moe.Transposed} {
			for _, b := range []bool{false, true} {
				want = append(want, fmt.Sprintf("%s/%s/bias=%v", a, l, b))
			}
		}
	}
	for _, k := range want {
		if cv[k] == 0 {
			t.Errorf("coverage: no case reached %q", k)
		}
	}
}

// maxAbs is max |v|.
func maxAbs(v []float64) float64 {
	var m float64
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}
