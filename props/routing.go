package props

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/moecheck/moecheck/moe"
)

// RoutingMode selects how a generated case routes its slots. Lower values are simpler
// (shrinking moves toward Uniform).
type RoutingMode int

const (
	Uniform        RoutingMode = iota // each slot picks a global expert uniformly (non-local → sentinel)
	Duplicates                        // slots of a token repeat one expert (duplicate top-k ids)
	HotOne                            // half the slots go to one hot expert
	AllOne                            // every slot goes to one expert
	Imbalanced                        // only a third of the experts get slots: empty experts
	Zipf                              // Zipf-skewed expert popularity (s = 1.3)
	Nowhere                           // a third of the tokens are routed nowhere (all slots sentinel)
	MostlySentinel                    // 7/8 of the slots are sentinel (like EP 8)
	AllSentinel                       // every slot is sentinel: the all-sentinel batch
	numRoutingModes
)

var routingNames = []string{"uniform", "duplicates", "hot-one", "all-one", "imbalanced", "zipf", "nowhere", "mostly-sentinel", "all-sentinel"}

func (m RoutingMode) String() string {
	if m >= 0 && m < numRoutingModes {
		return routingNames[m]
	}
	return fmt.Sprintf("routing(%d)", int(m))
}

// ParseRoutingMode parses a routing mode name.
func ParseRoutingMode(s string) (RoutingMode, error) {
	for i, n := range routingNames {
		if strings.EqualFold(s, n) {
			return RoutingMode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown routing mode %q (known: %s)", s, strings.Join(routingNames, ", "))
}

// WeightMode selects the routing weights.
type WeightMode int

const (
	UnitWeights     WeightMode = iota // uniform in (0, 1]
	ZeroWeights                       // a third of the real slots have weight 0
	TinyWeights                       // 2^-20 … 2^-10
	NegativeWeights                   // uniform in (−1, 1)
	LargeWeights                      // 64 … 128 (fp16) or 4096 … 8192
	SentinelWeights                   // sentinel slots keep a nonzero weight (must still contribute nothing)
	numWeightModes
)

var weightNames = []string{"unit", "zero", "tiny", "negative", "large", "sentinel-nonzero"}

func (m WeightMode) String() string {
	if m >= 0 && m < numWeightModes {
		return weightNames[m]
	}
	return fmt.Sprintf("weights(%d)", int(m))
}

// ParseWeightMode parses a weight mode name.
func ParseWeightMode(s string) (WeightMode, error) {
	for i, n := range weightNames {
		if strings.EqualFold(s, n) {
			return WeightMode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown weight mode %q (known: %s)", s, strings.Join(weightNames, ", "))
}

// buildRouting draws the routing of cfg. Each token draws from its own random stream, so a
// shrunk T keeps the routing of the remaining tokens. Sentinel slots are local id E; with
// global set (World > 1) the routing is also expressed in global ids (a sentinel becomes a
// random expert of another rank) and the returned Routing is FromGlobal of it.
func buildRouting(cfg moe.Config, mode RoutingMode, wm WeightMode, seed uint64, global bool) (moe.Routing, *moe.GlobalRouting, error) {
	E, K, W := cfg.E, cfg.K, cfg.EP.WorldSize()
	S := cfg.S()
	sentinel := int32(E)
	base := moe.NewRand(seed ^ 0x2545f4914f6cdd1d)
	hot := int32(base.IntN(E))
	allowed := []int32{hot}
	for e := 0; e < E; e++ {
		if int32(e) != hot && base.IntN(3) == 0 {
			allowed = append(allowed, int32(e))
		}
	}
	var zipf *rand.Zipf
	ids := make([]int32, S)
	w := make([]float64, S)
	d := cfg.DType
	for t := 0; t < cfg.T; t++ {
		rng := moe.NewRand(seed*0x9e3779b97f4a7c15 + uint64(t) + 1)
		if mode == Zipf && W*E > 1 {
			zipf = rand.NewZipf(rng, 1.3, 1, uint64(W*E-1))
		}
		// uniformGlobal picks a global expert; it is local with probability 1/W.
		uniformGlobal := func() int32 {
			if rng.IntN(W) != 0 {
				return sentinel
			}
			return int32(rng.IntN(E))
		}
		nowhere := mode == Nowhere && rng.IntN(3) == 0
		first := uniformGlobal()
		for k := 0; k < K; k++ {
			var id int32
			switch mode {
			case Uniform:
				id = uniformGlobal()
			case Duplicates:
				id = first
				if rng.IntN(2) == 0 {
					id = uniformGlobal()
				}
			case HotOne:
				id = hot
				if rng.IntN(2) == 0 {
					id = uniformGlobal()
				}
			case AllOne:
				id = hot
			case Imbalanced:
				id = allowed[rng.IntN(len(allowed))]
				if rng.IntN(W) != 0 {
					id = sentinel
				}
			case Zipf:
				if zipf == nil {
					id = 0
				} else if g := int(zipf.Uint64()); g/E == 0 { // experts of "rank 0" in popularity order are ours
					id = int32(g % E)
				} else {
					id = sentinel
				}
			case Nowhere:
				id = uniformGlobal()
				if nowhere {
					id = sentinel
				}
			case MostlySentinel:
				id = int32(rng.IntN(E))
				if rng.IntN(8) != 0 {
					id = sentinel
				}
			case AllSentinel:
				id = sentinel
			}
			s := t*K + k
			ids[s] = id
			w[s] = drawWeight(rng, d, wm)
			if id == sentinel && wm != SentinelWeights {
				w[s] = 0
			}
		}
	}
	if !global || W == 1 {
		r := moe.Routing{IDs: ids, Weights: w}
		return r, nil, r.Validate(cfg)
	}
	g := &moe.GlobalRouting{IDs: make([]int64, S), Weights: make([]float64, S), Options: moe.GlobalOptions{KeepSentinelWeights: wm == SentinelWeights}}
	lo := int64(cfg.EP.Rank) * int64(E)
	for s, id := range ids {
		g.Weights[s] = w[s]
		if id != sentinel {
			g.IDs[s] = lo + int64(id)
			continue
		}
		rng := moe.NewRand(seed + uint64(s)*0x632be59bd9b4e019)
		other := (cfg.EP.Rank + 1 + rng.IntN(W-1)) % W
		g.IDs[s] = int64(other)*int64(E) + int64(rng.IntN(E))
		if wm != SentinelWeights {
			g.Weights[s] = drawWeight(rng, d, wm) // the router's weight; the EP map zeroes it
		}
	}
	r, err := moe.FromGlobal(cfg, g.IDs, g.Weights, g.Options)
	return r, g, err
}

func drawWeight(rng *rand.Rand, d moe.DType, wm WeightMode) float64 {
	switch wm {
	case ZeroWeights:
		if rng.IntN(3) == 0 {
			return 0
		}
	case TinyWeights:
		return d.Round(math.Ldexp(0.5+rng.Float64()/2, -10-rng.IntN(11)))
	case NegativeWeights:
		return d.Round(rng.Float64()*2 - 1)
	case LargeWeights:
		s := 12
		if d == moe.FP16 {
			s = 6
		}
		return d.Round(math.Ldexp(1+rng.Float64(), s))
	}
	return d.Round(1 - rng.Float64())
}
