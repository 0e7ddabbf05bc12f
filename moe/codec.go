package moe

import (
	"fmt"
	"math"
)

// This file is the byte codec that turns an arbitrary byte string into a valid Case, so that
// Go's fuzzer (which mutates and minimizes only []byte) explores and shrinks cases.
//
// Encoding, version 1. Bytes are read from a cursor as values v = (b − '0') mod 256: the byte
// '0' (0x30) reads as 0, '1' as 1, …, and a byte past the end of the input also reads as 0.
// The value 0 is always the smallest or simplest choice, so a shorter input means a smaller
// and simpler case (cutting the tail never makes any size larger), and so does every '0':
// Go's fuzz minimizer, after cutting bytes, replaces each byte with a printable character,
// '0' first, then '1', '2', '7', '8', '9', 'A' (17), …, so its output is made of '0's and a few
// small values (an input of '0's only decodes as the empty input does). "u(n)" below is an unsigned
// little-endian integer of width(n) bytes (1 byte for n ≤ 256, 2 for n ≤ 65536, else 4)
// reduced modulo n; "bits" is a value's storage bits in the case dtype, little-endian, 2 bytes
// for bf16 and fp16, 4 for fp32. Limits below are those of the resolved DecodeLimits.
//
//	field         bytes            meaning
//	T             u(MaxT)          tokens T = 1 + v
//	H             u(MaxH)          hidden H = 1 + v
//	I             u(MaxI)          intermediate I = 1 + v
//	E             u(MaxE)          local experts E = 1 + v (the sentinel id is E)
//	K             u(MaxK)          top-k K = 1 + v
//	flags         1                bits 0–1 dtype (0 bf16, 1 fp16, 2 fp32, 3 bf16);
//	                               bit 2 gpt-oss activation (else SwiGLU);
//	                               bit 3 Transposed layout (else Standard); bit 4 biases;
//	                               bits 5–7 ignored
//	world         u(MaxWorld)      EP world W = 1 + v (W = 1 is stored as the zero EP)
//	rank          u(W)             EP rank
//	routing       1                bit 0 global: ids are global in [0, E·W), mapped by
//	                               FromGlobal (Case.Global set); else local ids in [0, E];
//	                               bit 1 GlobalOptions.KeepSentinelWeights (global only);
//	                               bits 2–7 ignored
//	data          1                bits 0–1 base DataMode (DataModes()[v]: normal, integer,
//	                               large, subnormal); bits 2–3 special-value density
//	                               (none, 1 in 16, 1 in 4, every value); bit 4 non-finite:
//	                               Case.NonFinite, and specials include NaN payloads and
//	                               ±Inf; bit 5 raw: bulk values are read from the input
//	                               instead of generated; bits 6–7 ignored
//	poison        1                poison selector (CaseMeta.Poison; the policy is
//	                               gpu.Poisons()[v % len(gpu.Poisons())], resolved by package
//	                               corpus, since moe imports nothing of ours)
//	seed          8                uint64 little-endian: the seed of Generate and of the
//	                               special values
//	ids           S × u(E+1)       local routing: slot s's id (v = E is the sentinel);
//	          or  S × u(E·W)       global routing: slot s's global id
//	weights       S × (1 | 1+bits) slot s's routing weight, by its first byte w:
//	                               0 → 1, 1 → +0, 2 → −0, 3 → 0.5, 4 → −1,
//	                               5 → MinSubnormal, 6 → 4096, 7 → MaxFinite of the dtype;
//	                               8 → the next bits are the weight (NaN reads as +0,
//	                               ±Inf as ±MaxFinite: routing weights are finite);
//	                               9..127 → (w−8)/119; 128..255 → −(w−127)/128;
//	                               every weight rounded to the dtype
//	raw tensors   Σ len × bits     only with the raw bit: X, W1, B1, W2, B2, dY in that
//	                               order (B1, B2 only with biases), each value's bits
//	overrides     records to end   while input bytes remain: a selector byte v; v = 0 is
//	                               an empty record (nothing follows); else tensor (v−1)
//	                               modulo the count of X, W1, B1, W2, B2, dY of this case,
//	                               then index u(len of that tensor), then value bits
//
// Data is built in three steps: the bulk (Generate(config, routing, seed, mode), or the raw
// tensors), then special values (when the density is not none: each value is replaced with
// probability 1/density, or always, by a value drawn from the dtype's special table, using a
// generator seeded from seed), then the overrides in input order. The special table is −0,
// ±MinSubnormal, the largest subnormal, MinNormal, ±MaxFinite, and with the non-finite bit
// also +Inf, −Inf and the quiet NaNs with float32 bits 0x7FC00000, 0xFFC00000 and 0x7FD50000
// (a payload every dtype keeps). Case.NonFinite is set by the non-finite bit or by any NaN or
// ±Inf that raw bits or overrides put in the data.
//
// Decoded sizes that the resolved limits' MaxElements, or moe's slot or global-expert limits,
// would refuse are halved (the largest of T, H, I, E, K for elements, T for slots, W for
// global experts) until they fit; with the default decode limits this never happens.

// DecodeLimits bounds the cases DecodeCase builds. A zero or negative field means the
// DefaultDecodeLimits() value, so the zero DecodeLimits is valid; a field above DefaultLimits()
// (moe's own limits) is lowered to it, so every decoded case passes Validate(Limits{}).
type DecodeLimits struct {
	MaxT, MaxH, MaxI, MaxE, MaxK int
	MaxWorld                     int   // EP ranks
	MaxElements                  int64 // all float64 values of a case together (Config.Elements)
}

// defaultDecodeLimits keeps decoded cases small, for fuzzing speed (a largest case holds
// about 64Ki values): T ≤ 32, H and I ≤ 48, E ≤ 8, K ≤ 8, EP world ≤ 8.
var defaultDecodeLimits = DecodeLimits{MaxT: 32, MaxH: 48, MaxI: 48, MaxE: 8, MaxK: 8, MaxWorld: 8, MaxElements: 1 << 20}

// minElements is the size of the smallest case with biases (T = H = I = E = K = 1): X and dY
// 2, W1 and W2 3, routing 1, B1 and B2 3.
const minElements = 9

// Resolve returns the limits DecodeCase actually uses: defaults filled in, every field
// lowered to DefaultLimits(), and MaxElements raised to at least 9 (the smallest case).
func (l DecodeLimits) Resolve() DecodeLimits {
	d, m := defaultDecodeLimits, defaultLimits
	pick := func(v, def, max int) int {
		if v <= 0 {
			v = def
		}
		return min(v, max)
	}
	l.MaxT = pick(l.MaxT, d.MaxT, m.MaxT)
	l.MaxH = pick(l.MaxH, d.MaxH, m.MaxH)
	l.MaxI = pick(l.MaxI, d.MaxI, m.MaxI)
	l.MaxE = pick(l.MaxE, d.MaxE, m.MaxE)
	l.MaxK = pick(l.MaxK, d.MaxK, m.MaxK)
	l.MaxWorld = pick(l.MaxWorld, d.MaxWorld, m.MaxWorld)
	if l.MaxElements <= 0 {
		l.MaxElements = d.MaxElements
	}
	l.MaxElements = max(min(l.MaxElements, m.MaxElements), minElements)
	return l
}

// CaseMeta records the choices DecodeCase made that are not part of the Case itself, for a
// property runner (which poison to run under) and for corpus entries (how the data was made).
type CaseMeta struct {
	Seed      uint64   // seed of the bulk data and of the special values
	Data      DataMode // generation mode of the bulk data (unused when Raw)
	Raw       bool     // bulk values were read from the input instead of generated
	Specials  int      // each value was replaced by a special one with probability 1/Specials; 0: none
	Overrides int      // explicit value overrides applied last
	// Poison is the poison selector byte: the run's policy is gpu.Poison(Poison % number
	// of policies); package corpus resolves it (moe imports nothing of ours).
	Poison uint8
}

// Seeded reports whether the case's tensors are exactly Generate(config, routing, Seed, Data):
// no raw bulk, no special values, no overrides.
func (m CaseMeta) Seeded() bool { return !m.Raw && m.Specials == 0 && m.Overrides == 0 }

// Salt of the special values' generator, so they do not repeat Generate's draws.
const specialsSalt = 0x243f6a8885a308d3

// Data byte bits.
const (
	dataModeMask  = 0x03
	dataSpecShift = 2
	dataNonFinite = 0x10
	dataRaw       = 0x20
)

var specialDensities = [4]int{0, 16, 4, 1}

// weight byte meanings below 9 (see the table above).
const (
	weightRawByte  = 8
	weightGridNeg  = 128
	weightGridDiv  = 119 // positive grid (w−8)/119 for w in 9..127
	weightNegDiv   = 128 // negative grid −(w−127)/128 for w in 128..255
	weightTableLen = 8
)

// byteOrigin is the byte that reads as 0 (see the encoding).
const byteOrigin = '0'

// cursor reads the input as values b − '0'; bytes past the end read as 0.
type cursor struct {
	b []byte
	i int
}

func (c *cursor) next() byte {
	var v byte
	if c.i < len(c.b) {
		v = c.b[c.i] - byteOrigin
	}
	c.i++
	return v
}

func (c *cursor) more() bool { return c.i < len(c.b) }

// uint reads a w-byte little-endian unsigned integer.
func (c *cursor) uint(w int) uint64 {
	var v uint64
	for k := 0; k < w; k++ {
		v |= uint64(c.next()) << (8 * k)
	}
	return v
}

// width is the byte count of u(n).
func width(n int) int {
	switch {
	case n <= 1<<8:
		return 1
	case n <= 1<<16:
		return 2
	}
	return 4
}

// below reads u(n): a value in [0, n), n ≥ 1.
func (c *cursor) below(n int) int { return int(c.uint(width(n)) % uint64(n)) }

// valueBytes is the width of a value's storage bits.
func valueBytes(d DType) int { return d.Bits() / 8 }

// fromBits is a value of d from its storage bits (NaN payloads kept as float32 payloads).
func fromBits(d DType, b uint32) float64 { return float64(d.FromBits(b)) }

// toBits is the inverse of fromBits on values of d (NaN payloads kept where d keeps them).
func toBits(d DType, x float64) uint32 {
	f := float32(x)
	if math.IsNaN(x) {
		b := math.Float32bits(f)
		switch d {
		case BF16:
			return b >> 16
		case FP16:
			// sign, all-ones exponent, quiet bit, the top 10 mantissa bits
			return (b>>16)&0x8000 | 0x7c00 | 0x0200 | (b&0x007fffff)>>13
		}
		return b
	}
	return d.ToBits(x)
}

// nanFrom32 is the float64 NaN with the float32 bits b (sign and payload kept).
func nanFrom32(b uint32) float64 { return float64(math.Float32frombits(b)) }

// Special NaNs: canonical quiet NaN, its negative, and one with a payload in float32 bits
// 16, 18, 20 (inside bf16's and fp16's mantissa, so it survives storage in every dtype).
const (
	nanQuiet   = 0x7FC00000
	nanNeg     = 0xFFC00000
	nanPayload = 0x7FD50000
)

// specialValues is the dtype's special table (see the encoding above).
func specialValues(d DType, nonFinite bool) []float64 {
	v := []float64{math.Copysign(0, -1), d.MinSubnormal(), -d.MinSubnormal(), d.MinNormal() - d.MinSubnormal(),
		d.MinNormal(), d.MaxFinite(), -d.MaxFinite()}
	if nonFinite {
		v = append(v, math.Inf(1), math.Inf(-1), nanFrom32(nanQuiet), nanFrom32(nanNeg), nanFrom32(nanPayload))
	}
	return v
}

// decodeWeight decodes one routing weight (see the table above).
func decodeWeight(c *cursor, d DType) float64 {
	w := c.next()
	switch w {
	case 0:
		return 1
	case 1:
		return 0
	case 2:
		return math.Copysign(0, -1)
	case 3:
		return 0.5
	case 4:
		return -1
	case 5:
		return d.MinSubnormal()
	case 6:
		return 4096
	case 7:
		return d.MaxFinite()
	case weightRawByte:
		v := fromBits(d, uint32(c.uint(valueBytes(d))))
		switch {
		case math.IsNaN(v):
			return 0
		case math.IsInf(v, 0):
			return math.Copysign(d.MaxFinite(), v)
		}
		return v
	}
	if w < weightGridNeg {
		return d.Round(float64(w-weightRawByte) / weightGridDiv)
	}
	return d.Round(-float64(w-(weightGridNeg-1)) / weightNegDiv)
}

// fit halves sizes until the config passes lim and moe's own limits (see the encoding notes).
func fit(c *Config, lim DecodeLimits) {
	m := defaultLimits
	for c.T*c.K > m.MaxSlots {
		c.T = (c.T + 1) / 2
	}
	for c.E*c.EP.WorldSize() > m.MaxG {
		w := (c.EP.WorldSize() + 1) / 2
		c.EP = EP{World: w, Rank: c.EP.Rank % w}
	}
	for c.Elements() > lim.MaxElements {
		p := &c.T
		for _, q := range []*int{&c.H, &c.I, &c.E, &c.K} {
			if *q > *p {
				p = q
			}
		}
		if *p == 1 { // unreachable: Resolve keeps MaxElements ≥ the smallest case
			break
		}
		*p = (*p + 1) / 2
	}
	if c.EP.WorldSize() == 1 {
		c.EP = EP{}
	}
}

// tensors lists the case's tensors in codec order: X, W1, B1, W2, B2, dY (biases only with
// Bias).
func (c *Case) tensors() []*[]float64 {
	if c.Bias {
		return []*[]float64{&c.X, &c.W1, &c.B1, &c.W2, &c.B2, &c.DY}
	}
	return []*[]float64{&c.X, &c.W1, &c.W2, &c.DY}
}

// tensorNames names the tensors of Case.tensors.
func tensorNames(bias bool) []string {
	if bias {
		return []string{"X", "W1", "B1", "W2", "B2", "dY"}
	}
	return []string{"X", "W1", "W2", "dY"}
}

// hasNonFinite reports whether any tensor value is NaN or ±Inf.
func (c *Case) hasNonFinite() bool {
	for _, t := range c.tensors() {
		for _, x := range *t {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return true
			}
		}
	}
	return false
}

// DecodeCase decodes data into a case that passes Validate(Limits{}) and whose sizes stay
// within lim (resolved by DecodeLimits.Resolve). It is total and deterministic: every byte
// string, the empty one included, decodes to exactly one case, and it never panics. The
// encoding is documented at the top of codec.go; the empty input gives T = H = I = E = K = 1,
// bf16, SwiGLU, Standard layout, no bias, no EP, slot 0 on expert 0 with weight 1, normal data
// from seed 0.
func DecodeCase(data []byte, lim DecodeLimits) (*Case, CaseMeta) {
	l := lim.Resolve()
	cur := &cursor{b: data}
	var cfg Config
	cfg.T = 1 + cur.below(l.MaxT)
	cfg.H = 1 + cur.below(l.MaxH)
	cfg.I = 1 + cur.below(l.MaxI)
	cfg.E = 1 + cur.below(l.MaxE)
	cfg.K = 1 + cur.below(l.MaxK)
	f := cur.next()
	cfg.DType = dtypeList[int(f&3)%len(dtypeList)]
	if f&0x04 != 0 {
		cfg.Act = GptOss
	}
	if f&0x08 != 0 {
		cfg.Layout = Transposed
	}
	cfg.Bias = f&0x10 != 0
	w := 1 + cur.below(l.MaxWorld)
	cfg.EP = EP{World: w, Rank: cur.below(w)}
	fit(&cfg, l)
	rk := cur.next()
	db := cur.next()
	meta := CaseMeta{Data: dataModeList[db&dataModeMask], Raw: db&dataRaw != 0, Specials: specialDensities[(db>>dataSpecShift)&3]}
	meta.Poison = cur.next()
	meta.Seed = cur.uint(8)
	d := cfg.DType

	// Routing.
	S := cfg.S()
	var r Routing
	var global *GlobalRouting
	if rk&1 != 0 {
		G := cfg.G()
		global = &GlobalRouting{IDs: make([]int64, S), Weights: make([]float64, S),
			Options: GlobalOptions{KeepSentinelWeights: rk&2 != 0}}
		for s := range global.IDs {
			global.IDs[s] = int64(cur.below(G))
		}
		for s := range global.Weights {
			global.Weights[s] = decodeWeight(cur, d)
		}
		var err error
		if r, err = FromGlobal(cfg, global.IDs, global.Weights, global.Options); err != nil {
			panic(fmt.Sprintf("moe: DecodeCase built invalid global routing (a bug in the codec): %v", err))
		}
	} else {
		r = Routing{IDs: make([]int32, S), Weights: make([]float64, S)}
		for s := range r.IDs {
			r.IDs[s] = int32(cur.below(cfg.E + 1))
		}
		for s := range r.Weights {
			r.Weights[s] = decodeWeight(cur, d)
		}
	}

	// Bulk data.
	var c *Case
	if meta.Raw {
		c = &Case{Config: cfg, Routing: r}
		c.X, c.W1, c.W2, c.DY = make([]float64, cfg.LenX()), make([]float64, cfg.LenW1()), make([]float64, cfg.LenW2()), make([]float64, cfg.LenX())
		if cfg.Bias {
			c.B1, c.B2 = make([]float64, cfg.LenB1()), make([]float64, cfg.LenB2())
		}
		vb := valueBytes(d)
		for _, t := range c.tensors() {
			for i := range *t {
				(*t)[i] = fromBits(d, uint32(cur.uint(vb)))
			}
		}
	} else {
		var err error
		if c, err = Generate(cfg, r, meta.Seed, meta.Data); err != nil {
			panic(fmt.Sprintf("moe: DecodeCase built an invalid config or routing (a bug in the codec): %v", err))
		}
	}
	c.Global = global

	// Special values.
	if n := meta.Specials; n > 0 {
		rng := NewRand(meta.Seed ^ specialsSalt)
		table := specialValues(d, db&dataNonFinite != 0)
		for _, t := range c.tensors() {
			for i := range *t {
				if n == 1 || rng.IntN(n) == 0 {
					(*t)[i] = table[rng.IntN(len(table))]
				}
			}
		}
	}

	// Overrides.
	ts := c.tensors()
	vb := valueBytes(d)
	for cur.more() {
		sel := cur.next()
		if sel == 0 {
			continue
		}
		t := ts[int(sel-1)%len(ts)]
		i := cur.below(len(*t))
		(*t)[i] = fromBits(d, uint32(cur.uint(vb)))
		meta.Overrides++
	}
	c.NonFinite = db&dataNonFinite != 0 || c.hasNonFinite()
	return c, meta
}

// DefaultDecodeLimits returns the limits used when a DecodeLimits field is zero.
func DefaultDecodeLimits() DecodeLimits { return defaultDecodeLimits }
