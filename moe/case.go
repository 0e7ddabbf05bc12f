package moe

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/moecheck/moecheck/internal/par"
)

// Case is one complete input of the layer on one rank: config, routing, hidden states,
// expert weights (in Config.Layout), optional biases and the upstream gradient dY.
// Every value is exactly representable in Config.DType.
type Case struct {
	Config
	Routing Routing
	X       []float64 // T×H hidden states
	W1      []float64 // gate_up_proj: E×2I×H (Standard) or E×H×2I (Transposed)
	B1      []float64 // E×2I, nil without Bias
	W2      []float64 // down_proj: E×H×I (Standard) or E×I×H (Transposed)
	B2      []float64 // E×H, nil without Bias
	DY      []float64 // T×H upstream gradient of the output

	// Global, when set, is the routing as the router produced it, in global expert ids with
	// the router's weights, before this rank's map to local ids. Routing must equal
	// FromGlobal(Config, Global.IDs, Global.Weights, Global.Options). A path that implements
	// the map itself (the EP router hook) reads Global; others read Routing.
	Global *GlobalRouting

	// NonFinite allows NaN and ±Inf in X, W1, W2, B1, B2 and DY (never in routing weights).
	// The oracle then checks the exact contracts everywhere and values only where the
	// reference is finite.
	NonFinite bool
}

// GlobalRouting is routing in global expert ids [0, G), before the EP map.
type GlobalRouting struct {
	IDs     []int64
	Weights []float64
	Options GlobalOptions
}

// W1Index is the flat index of gate_up_proj[e][j][h] (j in [0, 2I) is GEMM 1's output
// column, h in [0, H)) in the case's layout.
func (c Config) W1Index(e, j, h int) int {
	if c.Layout == Transposed {
		return (e*c.H+h)*2*c.I + j
	}
	return (e*2*c.I+j)*c.H + h
}

// W2Index is the flat index of down_proj[e][h][j] (h in [0, H) output column, j in [0, I))
// in the case's layout.
func (c Config) W2Index(e, h, j int) int {
	if c.Layout == Transposed {
		return (e*c.I+j)*c.H + h
	}
	return (e*c.H+h)*c.I + j
}

// GateCol and UpCol map activation column j in [0, I) to GEMM 1's output columns:
// SwiGLU concatenates (gate j, up I+j); gpt-oss interleaves (gate 2j, up 2j+1).
func (c Config) GateCol(j int) int {
	if c.Act == GptOss {
		return 2 * j
	}
	return j
}

// UpCol: see GateCol.
func (c Config) UpCol(j int) int {
	if c.Act == GptOss {
		return 2*j + 1
	}
	return c.I + j
}

// Validate checks the config (against lim), the routing and every tensor's length and values.
func (c *Case) Validate(lim Limits) error {
	if err := c.ValidateRouting(lim); err != nil {
		return err
	}
	return c.validateTensors()
}

// ValidateRouting is the part of Validate that does not read the float tensors X, W1, W2,
// B1, B2 and DY: the config (against lim), the routing and the global routing. A case whose
// tensors travel as storage bits (internal/rawcase) checks them on their bits instead.
func (c *Case) ValidateRouting(lim Limits) error {
	if c == nil {
		return fmt.Errorf("moe: nil case")
	}
	if err := c.Config.Validate(lim); err != nil {
		return err
	}
	if err := c.Routing.Validate(c.Config); err != nil {
		return err
	}
	if g := c.Global; g != nil {
		r, err := FromGlobal(c.Config, g.IDs, g.Weights, g.Options)
		if err != nil {
			return fmt.Errorf("moe: global routing: %w", err)
		}
		for s := range r.IDs {
			if r.IDs[s] != c.Routing.IDs[s] || r.Weights[s] != c.Routing.Weights[s] {
				return fmt.Errorf("moe: routing at token %d slot %d (id %d, weight %v) differs from the map of the global routing (id %d, weight %v)",
					s/c.K, s%c.K, c.Routing.IDs[s], c.Routing.Weights[s], r.IDs[s], r.Weights[s])
			}
		}
	}
	return nil
}

// validateTensors is the part of Validate that ValidateRouting leaves out.
func (c *Case) validateTensors() error {
	type tensor struct {
		name string
		v    []float64
		n    int
	}
	ts := []tensor{{"X (hidden)", c.X, c.LenX()}, {"W1 (gate_up_proj)", c.W1, c.LenW1()},
		{"W2 (down_proj)", c.W2, c.LenW2()}, {"dY", c.DY, c.LenX()}}
	if c.Bias {
		ts = append(ts, tensor{"B1 (gate_up bias)", c.B1, c.LenB1()}, tensor{"B2 (down bias)", c.B2, c.LenB2()})
	} else if c.B1 != nil || c.B2 != nil {
		return fmt.Errorf("moe: biases given but Bias is off")
	}
	for _, t := range ts {
		if len(t.v) != t.n {
			return fmt.Errorf("moe: %s has %d values, want %d for %s", t.name, len(t.v), t.n, c.Config)
		}
		i := c.firstBad(t.v)
		if i < 0 {
			continue
		}
		x := t.v[i]
		if !c.NonFinite && (math.IsNaN(x) || math.IsInf(x, 0)) {
			return fmt.Errorf("moe: %s[%d] = %v: non-finite data needs NonFinite", t.name, i, x)
		}
		return fmt.Errorf("moe: %s[%d] = %v is not a %s value (nearest %v)", t.name, i, x, c.DType, c.DType.Round(x))
	}
	return nil
}

// firstBad returns the index of the first value of v that Validate refuses (non-finite
// without NonFinite, or not a DType value), or −1. Real shapes hold hundreds of millions of
// values, so the scan is split over the cores; each range stops at its first refused value
// and the smallest index wins, the one a serial scan would report.
func (c *Case) firstBad(v []float64) int {
	// Fast path (DType.Representable's own): a value in the dtype's normal range is finite, and
	// a value of the dtype exactly when its float64 significand bits below the dtype's precision
	// are zero; every other value takes both checks below.
	f := c.DType.format()
	low := uint64(1)<<uint(53-f.p) - 1
	first := atomic.Int64{}
	first.Store(math.MaxInt64)
	par.For(par.New(0, 0), len(v), 4, v, func(v []float64, lo, hi int) {
		if int64(lo) > first.Load() {
			return // a refused value lies before this range
		}
		for i := lo; i < hi; i++ {
			x := v[i]
			b := math.Float64bits(x)
			if e := int(b>>52&0x7ff) - 1023; e >= f.emin && e <= f.emax && b&low == 0 || b<<1 == 0 {
				continue // (±0: a value of every dtype)
			}
			if (!c.NonFinite && (math.IsNaN(x) || math.IsInf(x, 0))) || !c.DType.Representable(x) {
				for {
					f := first.Load()
					if int64(i) >= f || first.CompareAndSwap(f, int64(i)) {
						return
					}
				}
			}
		}
	})
	if f := first.Load(); f != math.MaxInt64 {
		return int(f)
	}
	return -1
}

// Clone returns a deep copy.
func (c *Case) Clone() *Case {
	d := *c
	d.Routing = c.Routing.Clone()
	if c.Global != nil {
		g := *c.Global
		g.IDs = append([]int64(nil), g.IDs...)
		g.Weights = append([]float64(nil), g.Weights...)
		d.Global = &g
	}
	cp := func(v []float64) []float64 {
		if v == nil {
			return nil
		}
		return append([]float64(nil), v...)
	}
	d.X, d.W1, d.B1, d.W2, d.B2, d.DY = cp(c.X), cp(c.W1), cp(c.B1), cp(c.W2), cp(c.B2), cp(c.DY)
	return &d
}

// Plan computes the canonical routing plan of the case.
func (c *Case) Plan() (*Plan, error) { return NewPlan(c.Routing.IDs, c.E) }
