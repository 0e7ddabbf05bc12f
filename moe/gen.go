package moe

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/moecheck/moecheck/internal/hugemem"
	"github.com/moecheck/moecheck/internal/par"
)

// DataMode selects how Generate draws tensor values.
type DataMode uint8

const (
	// Normal: N(0,1) hidden states and dY, weights N(0, 1/fan_in), biases N(0, 0.1²);
	// each value rounded to the dtype (round to nearest even).
	Normal DataMode = iota
	// Integer: small integers (|v| ≤ 2) everywhere, so every fp32 accumulation is exact
	// (all partial sums are integers below 2^24) and bitwise checks apply up to the
	// activation.
	Integer
	// Large: Normal scaled by a power of two chosen per dtype (2^31 for bf16/fp32, 2^3 for
	// fp16) so magnitudes are large yet every stage stays clear of overflow.
	Large
	// Subnormal: Normal, with a quarter of the hidden states and weights replaced by
	// subnormals of the dtype.
	Subnormal
)

// dataModeList lists every data mode.
var dataModeList = []DataMode{Normal, Integer, Large, Subnormal}

func (m DataMode) String() string {
	switch m {
	case Normal:
		return "normal"
	case Integer:
		return "integer"
	case Large:
		return "large"
	case Subnormal:
		return "subnormal"
	}
	return fmt.Sprintf("data(%d)", uint8(m))
}

// ParseDataMode parses a DataMode name.
func ParseDataMode(s string) (DataMode, error) {
	for _, m := range dataModeList {
		if strings.EqualFold(strings.TrimSpace(s), m.String()) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("moe: unknown data mode %q (want normal, integer, large or subnormal)", s)
}

// NewRand returns the deterministic generator moecheck uses for seed: PCG from math/rand/v2,
// identical on every machine and Go release that keeps PCG's specified output.
func NewRand(seed uint64) *rand.Rand { return rand.New(newPCG(seed)) }

// newPCG is NewRand's source.
func newPCG(seed uint64) *rand.PCG { return rand.NewPCG(seed, seed^0x9e3779b97f4a7c15) }

// Generate fills a case for cfg and routing r with data drawn from seed in the given mode.
// It validates cfg and r first.
func Generate(cfg Config, r Routing, seed uint64, mode DataMode) (*Case, error) {
	return generate(cfg, r, seed, mode, defaultStreamSplit())
}

// generate is Generate with the normal draws split as sp says (tests lower its thresholds).
func generate(cfg Config, r Routing, seed uint64, mode DataMode, sp streamSplit) (*Case, error) {
	if err := cfg.Validate(Limits{}); err != nil {
		return nil, err
	}
	if err := r.Validate(cfg); err != nil {
		return nil, err
	}
	if !slices.Contains(dataModeList, mode) {
		return nil, fmt.Errorf("moe: unknown data mode %v (want normal, integer, large or subnormal)", mode)
	}
	src := newPCG(seed)
	rng := rand.New(src)
	d := cfg.DType
	scale := 1.0
	if mode == Large {
		scale = math.Ldexp(1, 31)
		if d == FP16 {
			scale = 8
		}
	}
	draw := func(n int, std float64, sub bool) ([]float64, error) {
		v := hugemem.Float64s(n)
		if mode != Integer && !(sub && mode == Subnormal) {
			// The stream's draws (normStream: split over the cores, bitwise the serial
			// loop's), then the rounding (a pure function of each value) split over the
			// cores: the same values as rounding each draw in the loop below
			// (TestGenerateSameAsSerial), with the first touch of the pages and the
			// rounding of a real layer's hundreds of millions of values spread over every
			// core.
			par.For(par.New(0, 0), n, 1, v, touchPages)
			if err := normStream(src, v, std, sp); err != nil {
				return nil, err
			}
			par.For(par.New(0, 0), n, 8, v, d.roundInPlace)
			return v, nil
		}
		for i := range v {
			switch {
			case mode == Integer:
				v[i] = float64(rng.IntN(5) - 2)
			case sub && mode == Subnormal && rng.IntN(4) == 0:
				// a subnormal: k·minSubnormal with k below 2^(p-1)
				f := d.format()
				k := 1 + rng.IntN(1<<(f.p-1)-1)
				v[i] = d.Round(float64(k) * d.MinSubnormal() * float64(1-2*rng.IntN(2)))
			default:
				v[i] = d.Round(rng.NormFloat64() * std)
			}
		}
		return v, nil
	}
	c := &Case{Config: cfg, Routing: r.Clone()}
	tensors := []struct {
		dst  *[]float64
		n    int
		std  float64
		sub  bool
		skip bool
	}{
		{&c.X, cfg.LenX(), scale, true, false},
		{&c.W1, cfg.LenW1(), 1 / math.Sqrt(float64(cfg.H)), true, false},
		{&c.W2, cfg.LenW2(), 1 / math.Sqrt(float64(cfg.I)), true, false},
		{&c.B1, cfg.LenB1(), 0.1 * scale, false, !cfg.Bias},
		{&c.B2, cfg.LenB2(), 0.1 * scale, false, !cfg.Bias},
		{&c.DY, cfg.LenX(), 1, false, false},
	}
	for _, t := range tensors {
		if t.skip {
			continue
		}
		v, err := draw(t.n, t.std, t.sub)
		if err != nil {
			return nil, fmt.Errorf("moe: generating a case: %w", err)
		}
		*t.dst = v
	}
	return c, nil
}

// RandomRouting draws uniform routing: each slot picks a global expert uniformly from
// [0, G) with a weight uniform in (0, 1] rounded to the dtype, then FromGlobal maps it to
// this rank (non-local slots become sentinels with weight 0).
func RandomRouting(cfg Config, seed uint64) (Routing, error) {
	r, _, err := RandomGlobalRouting(cfg, seed)
	return r, err
}

// RandomGlobalRouting is RandomRouting that also returns the global routing it mapped.
func RandomGlobalRouting(cfg Config, seed uint64) (Routing, *GlobalRouting, error) {
	if err := cfg.Validate(Limits{}); err != nil {
		return Routing{}, nil, err
	}
	rng := NewRand(seed ^ 0x5851f42d4c957f2d)
	S := cfg.S()
	g := &GlobalRouting{IDs: make([]int64, S), Weights: make([]float64, S)}
	for s := range g.IDs {
		g.IDs[s] = int64(rng.IntN(cfg.G()))
		g.Weights[s] = cfg.DType.Round(1 - rng.Float64())
	}
	r, err := FromGlobal(cfg, g.IDs, g.Weights, g.Options)
	return r, g, err
}

// DataModes returns every data mode (a fresh copy: the table itself cannot be changed from outside).
func DataModes() []DataMode { return append([]DataMode(nil), dataModeList...) }

// touchPages writes a zero into every 4 KiB page of v[lo:hi], so that the page faults of a
// fresh allocation are taken by the goroutines of a split loop instead of one.
func touchPages(v []float64, lo, hi int) {
	for i := lo; i < hi; i += 512 {
		v[i] = 0
	}
}

// roundInPlace rounds v[lo:hi] to d.
func (d DType) roundInPlace(v []float64, lo, hi int) {
	for i := lo; i < hi; i++ {
		v[i] = d.Round(v[i])
	}
}
