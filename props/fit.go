package props

import (
	"slices"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Support describes the part of the case space a backend supports (from a worker's declared
// capabilities), for FitFunc. Empty lists mean "any".
type Support struct {
	DTypes   []moe.DType
	Variants []Variant
	Global   bool              // EP global routing supported
	AlignH   map[moe.DType]int // H must be a multiple of AlignH[dtype] (0 or 1: any)
	AlignI   map[moe.DType]int
	Poisons  []gpu.Poison
	// NoSentinels: the backend cannot take sentinel ids (a worker declaring sentinels=false):
	// fitted specs have EP world 1 and a routing mode without sentinel slots (nowhere,
	// mostly-sentinel and all-sentinel become uniform, duplicates and hot-one).
	NoSentinels bool
	// Check is the backend's own verdict on a fitted configuration (nil: none); it returns a
	// *gpu.UnsupportedError for a case still outside.
	Check func(cfg moe.Config, global bool) error
}

// Variant is an (activation, layout, bias) combination.
type Variant struct {
	Act    moe.Activation
	Layout moe.Layout
	Bias   bool
}

// FitFunc returns an Env.Fit that maps a spec into s deterministically: an unsupported dtype,
// variant or poison policy is replaced by a supported one chosen by the spec's own field
// values (so streams stay reproducible and varied), global routing is dropped when not
// supported, H and I are rounded up to the alignment. The fitted spec is what runs and what
// reproduce lines print; a shrink candidate is fitted the same way, so shrinking stays inside.
func FitFunc(s Support) func(Spec) (Spec, error) {
	return func(sp Spec) (Spec, error) {
		n := sp.normalized()
		if len(s.DTypes) > 0 && !slices.Contains(s.DTypes, moe.DType(n.DType)) {
			n.DType = int(s.DTypes[n.DType%len(s.DTypes)])
		}
		v := Variant{moe.Activation(n.Act), moe.Layout(n.Layout), n.Bias == 1}
		if len(s.Variants) > 0 && !slices.Contains(s.Variants, v) {
			v = s.Variants[(n.Act*4+n.Layout*2+n.Bias)%len(s.Variants)]
			n.Act, n.Layout, n.Bias = int(v.Act), int(v.Layout), 0
			if v.Bias {
				n.Bias = 1
			}
		}
		if !s.Global {
			n.Global = 0
		}
		if s.NoSentinels {
			n.World, n.Rank, n.Global = 1, 0, 0
			if r := RoutingMode(n.Routing); r == Nowhere || r == MostlySentinel || r == AllSentinel {
				n.Routing = int(r - Nowhere)
			}
		}
		d := moe.DType(n.DType)
		n.H = roundUp(n.H, s.AlignH[d])
		n.I = roundUp(n.I, s.AlignI[d])
		if len(s.Poisons) > 0 && !slices.Contains(s.Poisons, gpu.Poison(n.Poison)) {
			n.Poison = int(s.Poisons[n.Poison%len(s.Poisons)])
		}
		if s.Check != nil {
			if err := s.Check(n.Config(), n.Global == 1); err != nil {
				return n, err
			}
		}
		return n, nil
	}
}

func roundUp(v, m int) int {
	if m <= 1 {
		return v
	}
	return (v + m - 1) / m * m
}
