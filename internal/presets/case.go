package presets

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/moecheck/moecheck/moe"
)

// Routing selects how a preset case's tokens are routed.
type Routing uint8

const (
	// Dispatched: every token picks TopK distinct global experts uniformly with softmax
	// weights (renormalized over the top-k, as Qwen3 and Mixtral do), and the rank receives
	// only tokens with at least one local expert, as an all-to-all dispatch (DeepEP) delivers
	// them. The other slots of a received token are sentinels. The default.
	Dispatched Routing = iota
	// Replicated: every rank sees every token (transformers' RouterParallel): most slots are
	// sentinels when EP is large, and some tokens have no local slot at all.
	Replicated
	// Skewed: Dispatched with Zipf-distributed expert popularity (s = 1.2): hot experts with
	// many rows, and empty local experts.
	Skewed
	numRoutings
)

var routingNames = [...]string{"dispatched", "replicated", "skewed"}

func (r Routing) String() string {
	if r < numRoutings {
		return routingNames[r]
	}
	return fmt.Sprintf("routing(%d)", uint8(r))
}

// ParseRouting parses a routing name.
func ParseRouting(s string) (Routing, error) {
	for i, n := range routingNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Routing(i), nil
		}
	}
	return 0, fmt.Errorf("presets: unknown routing %q (known: %s)", s, strings.Join(routingNames[:], ", "))
}

// CaseOptions choose one rank's case of a preset. The zero value is valid: 4 tokens, the
// preset's EP size, rank 0, bf16, dispatched routing, normal data, seed 0, real shapes.
type CaseOptions struct {
	T       int // tokens on this rank (0: 4, see Tokens)
	EP      int // expert-parallel world size (0: the preset's); must divide the experts
	Rank    int // this rank, in [0, EP)
	DType   moe.DType
	Routing Routing
	Data    moe.DataMode
	Seed    uint64
	// Scale divides H and I (rounding up) for smoke tests of the machinery; 0 and 1 keep the
	// real shape. Reports name a scaled case by its actual sizes.
	Scale int
}

func (o CaseOptions) withDefaults(p Preset) CaseOptions {
	if o.T == 0 {
		o.T = 4
	}
	if o.EP == 0 {
		o.EP = p.EP
	}
	if o.Scale < 1 {
		o.Scale = 1
	}
	return o
}

// Config returns the rank's layer config for the options.
func (p Preset) Config(o CaseOptions) (moe.Config, error) {
	o = o.withDefaults(p)
	if err := p.validEP(o.EP); err != nil {
		return moe.Config{}, err
	}
	if o.Rank < 0 || o.Rank >= o.EP {
		return moe.Config{}, fmt.Errorf("presets: %s: rank %d outside [0, %d)", p.Name, o.Rank, o.EP)
	}
	if o.T < 1 {
		return moe.Config{}, fmt.Errorf("presets: %s: T = %d: need at least 1 token", p.Name, o.T)
	}
	cfg := moe.Config{T: o.T, H: ceilDiv(p.H, o.Scale), I: ceilDiv(p.I, o.Scale), E: p.Experts / o.EP, K: p.TopK,
		EP: moe.EP{World: o.EP, Rank: o.Rank}, Act: p.Act, Layout: p.Layout, DType: o.DType, Bias: p.Bias}
	if cfg.EP.World == 1 {
		cfg.EP = moe.EP{}
	}
	return cfg, cfg.Validate(moe.Limits{})
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// Case builds the rank's case: routing in global ids (Case.Global) mapped to the rank, data
// from o.Seed in o.Data mode.
func (p Preset) Case(o CaseOptions) (*moe.Case, error) {
	o = o.withDefaults(p)
	cfg, err := p.Config(o)
	if err != nil {
		return nil, err
	}
	g, err := p.routing(cfg, o)
	if err != nil {
		return nil, err
	}
	r, err := moe.FromGlobal(cfg, g.IDs, g.Weights, g.Options)
	if err != nil {
		return nil, fmt.Errorf("presets: %s: %w", p.Name, err)
	}
	c, err := moe.Generate(cfg, r, o.Seed, o.Data)
	if err != nil {
		return nil, fmt.Errorf("presets: %s: %w", p.Name, err)
	}
	c.Global = g
	return c, nil
}

// routing draws the global routing of cfg.T tokens.
func (p Preset) routing(cfg moe.Config, o CaseOptions) (*moe.GlobalRouting, error) {
	rng := moe.NewRand(o.Seed ^ 0x6a09e667f3bcc908)
	G, K := cfg.G(), cfg.K
	lo, hi := int64(cfg.EP.Rank*cfg.E), int64((cfg.EP.Rank+1)*cfg.E)
	var zipf *rand.Zipf
	if o.Routing == Skewed && G > 1 {
		zipf = rand.NewZipf(rng, 1.2, 1, uint64(G-1))
	}
	// popularity order: a fixed random permutation of the experts, so hot experts are spread
	// over the ranks.
	order := rng.Perm(G)
	g := &moe.GlobalRouting{IDs: make([]int64, 0, cfg.S()), Weights: make([]float64, 0, cfg.S())}
	ids := make([]int64, K)
	logits := make([]float64, K)
	// A rank with E local experts out of G receives a token with probability about
	// 1 − (1 − E/G)^K; bound the draws so a pathological option set cannot loop forever.
	maxDraws := 1000*cfg.T + 1000
	for t, draws := 0, 0; t < cfg.T; draws++ {
		if draws > maxDraws {
			return nil, fmt.Errorf("presets: %s: could not draw %d tokens for rank %d in %d tries", p.Name, cfg.T, cfg.EP.Rank, maxDraws)
		}
		seen := map[int64]bool{}
		local := false
		for k := 0; k < K; k++ {
			var e int64
			for {
				if zipf != nil {
					e = int64(order[zipf.Uint64()])
				} else {
					e = int64(rng.IntN(G))
				}
				if !seen[e] {
					break
				}
			}
			seen[e] = true
			ids[k] = e
			logits[k] = rng.NormFloat64()
			if e >= lo && e < hi {
				local = true
			}
		}
		if !local && o.Routing != Replicated {
			continue // the dispatch never sends this token here
		}
		// softmax over the top-k logits (renormalized top-k weights), rounded to the dtype
		m := math.Inf(-1)
		for _, l := range logits {
			m = math.Max(m, l)
		}
		sum := 0.0
		for _, l := range logits {
			sum += math.Exp(l - m)
		}
		for k := 0; k < K; k++ {
			g.IDs = append(g.IDs, ids[k])
			g.Weights = append(g.Weights, cfg.DType.Round(math.Exp(logits[k]-m)/sum))
		}
		t++
	}
	return g, nil
}

// Backend kinds for Tokens and FitEP.
const (
	CPU = "cpu" // gpu/sim or a CPU worker: one or two cores
	GPU = "gpu" // a device
)

// Tokens picks the tokens per rank for a preset case from the backend kind and the run's
// budget (0: unknown). On the CPU the cost of a real-shape case is dominated by the local
// weights (allocation, poison, the oracle's weight-gradient enclosures) and grows with the
// real rows; T = 4 keeps a case at seconds to a few tens of seconds at H = 2048..7168 on one
// core, 8 with an hour of budget, 16 with more. On a GPU, T = 4096 (a realistic per-rank
// micro-batch), 16384 with an hour or more, capped by the slot limit.
func Tokens(p Preset, kind string, budget time.Duration) int {
	if kind == GPU {
		t := 4096
		if budget >= time.Hour {
			t = 16384
		}
		return min(t, moe.DefaultLimits().MaxSlots/p.TopK)
	}
	switch {
	case budget > 4*time.Hour:
		return 16
	case budget >= time.Hour:
		return 8
	}
	return 4
}

// BytesPerElement is the peak memory per case value (Config.Elements) of one check on the
// CPU path: the case itself (float64), the sim's float32 copies, weight gradients and buffers,
// the float64 reference and the oracle's enclosures (center and radius of every weight
// gradient and stage). Measured with the matches property on gpu/sim: 61 bytes per value for
// qwen3-30b-a3b at EP 8, 90 for gpt-oss-20b (biases, transposed) at EP 8; rounded up. Used
// by FitEP.
const BytesPerElement = 96

// MemoryEstimate is the approximate peak memory in bytes of checking cfg on the CPU path.
func MemoryEstimate(cfg moe.Config) int64 { return cfg.Elements() * BytesPerElement }

// BytesPerElementSampledWorker is BytesPerElement for a sampled check (oracle.Sample) of a
// backend in a worker process (the CUDA path): the CLI holds the case, its request bits and
// the result, and the oracle judges a sample. Measured: the DeepSeek-V3 EP-32 rank at T =
// 16,384 (5.87·10^8 values) with --sample 0.02 on the CUDA path peaked at 24.3 GB of the
// CLI's RSS, 41 bytes a value; rounded up. (A larger EP rank holds more of its values in
// weights, which cost less than the activations: the figure is an upper bound there.)
const BytesPerElementSampledWorker = 48

// FitEP returns the smallest EP world size, at least o.EP (or the preset's), that divides the
// experts and whose rank case fits memBudget bytes (MemoryEstimate), with an error naming the
// need when even one local expert per rank does not fit.
func (p Preset) FitEP(o CaseOptions, memBudget int64) (int, error) {
	o = o.withDefaults(p)
	var need int64
	var cfgErr error
	for _, ep := range p.EPSizes() {
		if ep < o.EP {
			continue
		}
		q := o
		q.EP, q.Rank = ep, 0
		cfg, err := p.Config(q)
		if err != nil {
			cfgErr = err
			continue
		}
		need = MemoryEstimate(cfg)
		if need <= memBudget {
			return ep, nil
		}
	}
	if need == 0 && cfgErr != nil {
		return 0, cfgErr // no EP size gives a valid case: say why, not "0 MiB"
	}
	return 0, fmt.Errorf("presets: %s: one local expert needs about %d MiB, over the %d MiB budget; raise the budget or scale the shape",
		p.Name, need>>20, memBudget>>20)
}
