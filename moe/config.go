package moe

import (
	"fmt"
	"strings"
)

// Activation selects the expert MLP's gated activation.
type Activation uint8

const (
	// SwiGLU: gate = first half of GEMM 1's output, up = second half; a = silu(gate)·up.
	SwiGLU Activation = iota
	// GptOss: interleaved halves (gate = even columns, up = odd), gate clamped to ≤ Limit,
	// up clamped to [−Limit, Limit], a = (up+1)·gate·sigmoid(Alpha·gate).
	GptOss
)

// gpt-oss activation constants (openai/gpt-oss, transformers GptOssExperts).
const (
	GptOssAlpha = 1.702
	GptOssLimit = 7.0
)

func (a Activation) String() string {
	switch a {
	case SwiGLU:
		return "swiglu"
	case GptOss:
		return "gptoss"
	}
	return fmt.Sprintf("activation(%d)", uint8(a))
}

// ParseActivation parses "swiglu" or "gptoss" (also "gpt-oss").
func ParseActivation(s string) (Activation, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "swiglu", "silu":
		return SwiGLU, nil
	case "gptoss", "gpt-oss", "gpt_oss":
		return GptOss, nil
	}
	return 0, fmt.Errorf("moe: unknown activation %q (want swiglu or gptoss)", s)
}

// Layout selects the storage order of the expert weights.
type Layout uint8

const (
	// Standard: gate_up_proj E×2I×H, down_proj E×H×I (transformers' default).
	Standard Layout = iota
	// Transposed: gate_up_proj E×H×2I, down_proj E×I×H (gpt-oss).
	Transposed
)

func (l Layout) String() string {
	switch l {
	case Standard:
		return "standard"
	case Transposed:
		return "transposed"
	}
	return fmt.Sprintf("layout(%d)", uint8(l))
}

// ParseLayout parses "standard" or "transposed".
func ParseLayout(s string) (Layout, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "standard", "std":
		return Standard, nil
	case "transposed", "t":
		return Transposed, nil
	}
	return 0, fmt.Errorf("moe: unknown layout %q (want standard or transposed)", s)
}

// EP is this rank's place in expert parallelism: World ranks each own E local experts;
// rank r owns global experts [r·E, (r+1)·E). The zero value means no expert parallelism
// (World 1, rank 0).
type EP struct {
	World int // number of ranks; 0 is read as 1
	Rank  int // this rank, in [0, World)
}

// WorldSize returns World, reading 0 as 1.
func (p EP) WorldSize() int {
	if p.World == 0 {
		return 1
	}
	return p.World
}

// Config describes one MoE layer on one rank.
type Config struct {
	T, H, I int // tokens, hidden size, expert intermediate size (GEMM 1 has 2I outputs)
	E, K    int // local experts (the sentinel id is E), top-k slots per token
	EP      EP
	Act     Activation
	Layout  Layout
	DType   DType
	Bias    bool // expert biases B1 (E×2I) and B2 (E×H)
}

// S is the number of slots, T·K.
func (c Config) S() int { return c.T * c.K }

// G is the number of global experts, E·World.
func (c Config) G() int { return c.E * c.EP.WorldSize() }

// Sentinel is the local id of a slot that belongs to another rank: E.
func (c Config) Sentinel() int32 { return int32(c.E) }

// Tensor lengths.
func (c Config) LenX() int  { return c.T * c.H }
func (c Config) LenW1() int { return c.E * 2 * c.I * c.H }
func (c Config) LenW2() int { return c.E * c.H * c.I }
func (c Config) LenB1() int { return c.E * 2 * c.I }
func (c Config) LenB2() int { return c.E * c.H }

// Elements is the number of float64 values a Case of this config holds (inputs, weights,
// biases, dY and routing weights).
func (c Config) Elements() int64 {
	n := int64(c.T)*int64(c.H)*2 + int64(c.E)*int64(c.I)*int64(c.H)*3 + int64(c.T)*int64(c.K)
	if c.Bias {
		n += int64(c.E) * (2*int64(c.I) + int64(c.H))
	}
	return n
}

func (c Config) String() string {
	s := fmt.Sprintf("T=%d H=%d I=%d E=%d K=%d %s %s %s", c.T, c.H, c.I, c.E, c.K, c.DType, c.Act, c.Layout)
	if w := c.EP.WorldSize(); w > 1 {
		s += fmt.Sprintf(" ep=%d/%d", c.EP.Rank, w)
	}
	if c.Bias {
		s += " bias"
	}
	return s
}

// Validate checks the config against lim (the zero Limits means DefaultLimits()).
func (c Config) Validate(lim Limits) error {
	lim = lim.orDefault()
	check := func(name string, v, max int) error {
		if v <= 0 {
			return fmt.Errorf("moe: %s = %d: must be at least 1", name, v)
		}
		if v > max {
			return fmt.Errorf("moe: %s = %d exceeds the limit %d", name, v, max)
		}
		return nil
	}
	for _, x := range []struct {
		n      string
		v, max int
	}{{"T (tokens)", c.T, lim.MaxT}, {"H (hidden)", c.H, lim.MaxH}, {"I (intermediate)", c.I, lim.MaxI},
		{"E (local experts)", c.E, lim.MaxE}, {"K (top-k)", c.K, lim.MaxK}} {
		if err := check(x.n, x.v, x.max); err != nil {
			return err
		}
	}
	w := c.EP.WorldSize()
	if c.EP.World < 0 || w > lim.MaxWorld {
		return fmt.Errorf("moe: EP world size %d outside [1, %d]", c.EP.World, lim.MaxWorld)
	}
	if c.EP.Rank < 0 || c.EP.Rank >= w {
		return fmt.Errorf("moe: EP rank %d outside [0, %d) for world size %d", c.EP.Rank, w, w)
	}
	if int64(c.E)*int64(w) > int64(lim.MaxG) {
		return fmt.Errorf("moe: global experts E·W = %d·%d exceeds the limit %d", c.E, w, lim.MaxG)
	}
	if !c.DType.Valid() {
		return fmt.Errorf("moe: invalid dtype %d", c.DType)
	}
	if c.Act > GptOss {
		return fmt.Errorf("moe: invalid activation %d", c.Act)
	}
	if c.Layout > Transposed {
		return fmt.Errorf("moe: invalid layout %d", c.Layout)
	}
	if n := c.Elements(); n > lim.MaxElements {
		return fmt.Errorf("moe: case holds %d values (%d MiB as float64), over the limit of %d values (%d MiB); lower T, H, I or E",
			n, n*8>>20, lim.MaxElements, lim.MaxElements*8>>20)
	}
	if s := int64(c.T) * int64(c.K); s > int64(lim.MaxSlots) {
		return fmt.Errorf("moe: slots T·K = %d exceeds the limit %d", s, lim.MaxSlots)
	}
	return nil
}
