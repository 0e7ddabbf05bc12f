package props

import (
	"math/rand"
	"reflect"

	"github.com/leanovate/gopter"
	"github.com/leanovate/gopter/gen"

	"github.com/moecheck/moecheck/moe"
)

// GenOptions bound the generated specs. The zero value is valid: the defaults below.
type GenOptions struct {
	MaxT     int // tokens in the common mode; default 24
	LargeT   int // tokens in the rare large mode (> 128 rows on one expert); default 300
	LargePct int // percent of specs in the large mode; default 3
	// LongPct percent of specs (default 12; negative: none) are in the long-expert mode: T in
	// [129, LongT] (default 400), routing all-one (two in three) or hot-one, H and I at most
	// LongHI (default 16, keeping them cheap): one expert gets more than 128 rows — more than
	// 256 in most — so that the default 100-case budget exercises the row-tile loops of the
	// weight gradients (docs/oracle.md §9.4 measures how often).
	LongPct int
	LongT   int
	LongHI  int
	// MinH, when positive, raises every drawn H below it to MinH (e.g. 256 to measure the
	// catalog at H ≥ 256; shrinking may go below it).
	MinH int
	MaxH int // default 40
	MaxI int // default 40
	// WideH and WideI bound H and I in the rare wide mode (WidePct percent of draws each,
	// default 2): half multiples of 64 (whole tensor-core tiles, several column tiles of 128
	// and 256 and a full k pipeline on the GPU), half any size above MaxH/MaxI. Default 320.
	WideH, WideI int
	WidePct      int
	MaxE         int // default 8
	MaxK         int // default 8
	MaxWorld     int // default 8
	// DTypes restricts the dtypes drawn (nil: all).
	DTypes []moe.DType
	// Activations restricts the activations drawn (nil: both).
	Activations []moe.Activation
}

func (o GenOptions) withDefaults() GenOptions {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.MaxT, 24)
	def(&o.LargeT, 300)
	def(&o.LargePct, 3)
	def(&o.LongPct, 12)
	def(&o.LongT, 400)
	def(&o.LongHI, 16)
	def(&o.MaxH, 40)
	def(&o.MaxI, 40)
	def(&o.WideH, 320)
	def(&o.WideI, 320)
	def(&o.WidePct, 2)
	def(&o.MaxE, 8)
	def(&o.MaxK, 8)
	def(&o.MaxWorld, 8)
	return o
}

// intGen draws with draw and shrinks toward min (gopter's integer shrinker, filtered).
func intGen(min int, draw func(r *rand.Rand) int) gopter.Gen {
	shrink := func(v interface{}) gopter.Shrink {
		return gen.IntShrinker(v).Filter(func(x interface{}) bool { return x.(int) >= min })
	}
	return func(p *gopter.GenParameters) *gopter.GenResult {
		return gopter.NewGenResult(draw(p.Rng), shrink)
	}
}

func uniform(lo, hi int) func(r *rand.Rand) int {
	return func(r *rand.Rand) int { return lo + r.Intn(hi-lo+1) }
}

// small draws 1..max with a bias to small values and to multiples of 8 and 16 (the sizes
// kernels special-case) as well as odd sizes.
func small(max int) func(r *rand.Rand) int {
	return func(r *rand.Rand) int {
		switch r.Intn(4) {
		case 0:
			return 1 + r.Intn(min(max, 4))
		case 1:
			if m := max / 8; m > 0 {
				return 8 * (1 + r.Intn(m))
			}
		}
		return 1 + r.Intn(max)
	}
}

// oneOf draws from a set of values and shrinks toward smaller members of the set.
func oneOf(set []int) gopter.Gen {
	allowed := map[int]bool{}
	for _, v := range set {
		allowed[v] = true
	}
	shrink := func(v interface{}) gopter.Shrink {
		return gen.IntShrinker(v).Filter(func(x interface{}) bool { return allowed[x.(int)] })
	}
	return func(p *gopter.GenParameters) *gopter.GenResult {
		return gopter.NewGenResult(set[p.Rng.Intn(len(set))], shrink)
	}
}

func dtypeSet(ds []moe.DType) []int {
	if len(ds) == 0 {
		ds = moe.DTypes()
	}
	out := make([]int, len(ds))
	for i, d := range ds {
		out[i] = int(d)
	}
	return out
}

func actSet(as []moe.Activation) []int {
	if len(as) == 0 {
		return []int{int(moe.SwiGLU), int(moe.GptOss)}
	}
	out := make([]int, len(as))
	for i, a := range as {
		out[i] = int(a)
	}
	return out
}

// GenSpec generates specs mixing sizes, EP, dtypes, activations, layouts, biases, routing,
// weight and data modes and poison policies; each field shrinks on its own.
func GenSpec(o GenOptions) gopter.Gen {
	o = o.withDefaults()
	tokens := func(r *rand.Rand) int {
		if r.Intn(100) < o.LargePct {
			return 129 + r.Intn(o.LargeT-128)
		}
		return small(o.MaxT)(r)
	}
	world := func(r *rand.Rand) int {
		if r.Intn(2) == 0 {
			return 1
		}
		return 2 + r.Intn(o.MaxWorld-1)
	}
	size := func(max, wide int) func(r *rand.Rand) int {
		return func(r *rand.Rand) int {
			if wide > max && r.Intn(100) < o.WidePct {
				if r.Intn(2) == 0 && wide >= 64 {
					return 64 * (1 + r.Intn(wide/64))
				}
				return max + 1 + r.Intn(wide-max)
			}
			return small(max)(r)
		}
	}
	seed := func(p *gopter.GenParameters) *gopter.GenResult {
		return gopter.NewGenResult(int(p.Rng.Int31()), gopter.NoShrinker)
	}
	g := gen.Struct(reflect.TypeOf(Spec{}), map[string]gopter.Gen{
		"T":       intGen(1, tokens),
		"H":       intGen(1, size(o.MaxH, o.WideH)),
		"I":       intGen(1, size(o.MaxI, o.WideI)),
		"E":       intGen(1, uniform(1, o.MaxE)),
		"K":       intGen(1, uniform(1, o.MaxK)),
		"World":   intGen(1, world),
		"Rank":    intGen(0, uniform(0, o.MaxWorld-1)),
		"Global":  intGen(0, uniform(0, 1)),
		"DType":   oneOf(dtypeSet(o.DTypes)),
		"Act":     oneOf(actSet(o.Activations)),
		"Layout":  intGen(0, uniform(0, 1)),
		"Bias":    intGen(0, uniform(0, 1)),
		"Routing": intGen(0, uniform(0, int(numRoutingModes)-1)),
		"Weights": intGen(0, uniform(0, int(numWeightModes)-1)),
		"Data":    intGen(0, uniform(0, 3)),
		"Poison":  intGen(0, uniform(0, 6)),
		"Seed":    seed,
	})
	if o.LongPct <= 0 && o.MinH <= 0 {
		return g
	}
	// The long-expert mode overrides some fields of the drawn spec after the draw (so the
	// other cases of a stream are unchanged); the struct's per-field shrinkers still apply.
	return func(p *gopter.GenParameters) *gopter.GenResult {
		r := g(p)
		v, ok := r.Retrieve()
		if !ok {
			return r
		}
		s := v.(Spec)
		if o.LongPct > 0 && p.Rng.Intn(100) < o.LongPct {
			s.T = 129 + p.Rng.Intn(max(o.LongT-128, 1))
			s.Routing = int(AllOne)
			if p.Rng.Intn(3) == 0 {
				s.Routing = int(HotOne)
			}
			s.H = 1 + (s.H-1)%o.LongHI
			s.I = 1 + (s.I-1)%o.LongHI
		}
		if o.MinH > 0 && s.H < o.MinH {
			s.H = o.MinH
		}
		return gopter.NewGenResult(s, r.Shrinker)
	}
}
