package moe

import (
	"fmt"
	"math"
)

// Routing is one rank's routing in local expert ids: slot s = t*K + k of token t chose
// local expert IDs[s] with routing weight Weights[s]. IDs are in [0, E]; E is the sentinel
// (the slot's expert lives on another rank). Duplicate ids within a token's top-k are valid.
type Routing struct {
	IDs     []int32
	Weights []float64
}

// Clone returns a deep copy.
func (r Routing) Clone() Routing {
	return Routing{IDs: append([]int32(nil), r.IDs...), Weights: append([]float64(nil), r.Weights...)}
}

// Validate checks lengths (T·K), ids in [0, E] and weights finite and exactly representable
// in the case's dtype. Errors name the first offending slot as token/slot.
func (r Routing) Validate(c Config) error {
	S := c.S()
	if len(r.IDs) != S {
		return fmt.Errorf("moe: routing has %d ids, want T·K = %d·%d = %d", len(r.IDs), c.T, c.K, S)
	}
	if len(r.Weights) != S {
		return fmt.Errorf("moe: routing has %d weights, want T·K = %d", len(r.Weights), S)
	}
	for s, id := range r.IDs {
		if id < 0 || int(id) > c.E {
			return fmt.Errorf("moe: routing id %d at token %d slot %d outside [0, %d] (local experts 0..%d, sentinel %d)",
				id, s/c.K, s%c.K, c.E, c.E-1, c.E)
		}
	}
	for s, w := range r.Weights {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("moe: routing weight at token %d slot %d is %v: weights must be finite", s/c.K, s%c.K, w)
		}
		if !c.DType.Representable(w) {
			return fmt.Errorf("moe: routing weight %v at token %d slot %d is not a %s value (nearest %v)",
				w, s/c.K, s%c.K, c.DType, c.DType.Round(w))
		}
	}
	return nil
}

// GlobalOptions tunes FromGlobal. The zero value follows transformers' RouterParallel.
type GlobalOptions struct {
	// KeepSentinelWeights keeps the router's weight on non-local slots instead of zeroing it
	// (as frameworks that use −1 sentinels do). The contract is that a sentinel slot
	// contributes nothing whatever its weight, so both must give the same outputs.
	KeepSentinelWeights bool
}

// FromGlobal maps global expert ids in [0, G) to this rank's local ids exactly as
// transformers' expert-parallel router does: a slot whose global id g is owned by rank r
// (r·E ≤ g < (r+1)·E) gets local id g − r·E; every other slot gets the sentinel id E and,
// unless opts.KeepSentinelWeights, routing weight 0.
func FromGlobal(c Config, ids []int64, weights []float64, opts GlobalOptions) (Routing, error) {
	S := c.S()
	if len(ids) != S || len(weights) != S {
		return Routing{}, fmt.Errorf("moe: global routing has %d ids and %d weights, want T·K = %d each", len(ids), len(weights), S)
	}
	G := int64(c.G())
	lo := int64(c.EP.Rank) * int64(c.E)
	r := Routing{IDs: make([]int32, S), Weights: make([]float64, S)}
	for s, g := range ids {
		if g < 0 || g >= G {
			return Routing{}, fmt.Errorf("moe: global expert id %d at token %d slot %d outside [0, %d) (G = E·W = %d·%d)",
				g, s/c.K, s%c.K, G, c.E, c.EP.WorldSize())
		}
		w := weights[s]
		if g >= lo && g < lo+int64(c.E) {
			r.IDs[s] = int32(g - lo)
		} else {
			r.IDs[s] = int32(c.E)
			if !opts.KeepSentinelWeights {
				w = 0
			}
		}
		r.Weights[s] = w
	}
	return r, r.Validate(c)
}
