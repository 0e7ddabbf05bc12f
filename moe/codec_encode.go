package moe

import (
	"fmt"
	"math"
	"slices"
)

// EncodeCase returns bytes that DecodeCase(bytes, lim) decodes to a case equal to c
// (EqualCases), with meta Poison equal to m.Poison. It is the inverse of DecodeCase, used to
// seed fuzz targets with known cases (corpus entries): the data is encoded as overrides of
// Generate(c.Config, c.Routing, m.Seed, m.Data) when that is shorter (no overrides at all
// when c's data is exactly that), else as raw tensors. Trailing zero bytes are cut where the
// decoder reads them anyway.
//
// It fails, naming the limit, when c does not fit lim (resolved by DecodeLimits.Resolve), and
// when c is not valid.
func EncodeCase(c *Case, m CaseMeta, lim DecodeLimits) ([]byte, error) {
	if err := c.Validate(Limits{}); err != nil {
		return nil, fmt.Errorf("moe: encode: %w", err)
	}
	l := lim.Resolve()
	cfg := c.Config
	W := cfg.EP.WorldSize()
	for _, x := range []struct {
		n      string
		v, max int
	}{{"T (tokens)", cfg.T, l.MaxT}, {"H (hidden)", cfg.H, l.MaxH}, {"I (intermediate)", cfg.I, l.MaxI},
		{"E (local experts)", cfg.E, l.MaxE}, {"K (top-k)", cfg.K, l.MaxK}, {"EP world", W, l.MaxWorld}} {
		if x.v > x.max {
			return nil, fmt.Errorf("moe: encode: %s = %d exceeds the decode limit %d", x.n, x.v, x.max)
		}
	}
	if n := cfg.Elements(); n > l.MaxElements {
		return nil, fmt.Errorf("moe: encode: case holds %d values, over the decode limit of %d", n, l.MaxElements)
	}
	d := cfg.DType
	names := tensorNames(cfg.Bias)
	for k, t := range c.tensors() {
		for i, x := range *t {
			if math.IsNaN(x) && !sameValue(fromBits(d, toBits(d, x)), x) {
				return nil, fmt.Errorf("moe: encode: %s[%d] is a NaN with float32 bits %#08x that %s storage does not keep",
					names[k], i, math.Float32bits(float32(x)), d)
			}
		}
	}
	mode := m.Data
	if mode > Subnormal {
		mode = Normal
	}
	base, err := Generate(cfg, c.Routing, m.Seed, mode)
	if err != nil {
		return nil, fmt.Errorf("moe: encode: %w", err)
	}
	vb := valueBytes(d)
	type override struct{ t, i int }
	var diffs []override
	rawCost := 0
	bt, ct := base.tensors(), c.tensors()
	for k := range ct {
		a, b := *bt[k], *ct[k]
		rawCost += len(b) * vb
		for i := range b {
			if !sameValue(a[i], b[i]) {
				diffs = append(diffs, override{k, i})
			}
		}
	}
	overCost := 0
	for _, o := range diffs {
		overCost += 1 + width(len(*ct[o.t])) + vb
	}
	raw := overCost > rawCost

	var out []byte // values; the bytes are out[i] + '0'
	put := func(w int, v uint64) {
		for k := 0; k < w; k++ {
			out = append(out, byte(v>>(8*k)))
		}
	}
	put(width(l.MaxT), uint64(cfg.T-1))
	put(width(l.MaxH), uint64(cfg.H-1))
	put(width(l.MaxI), uint64(cfg.I-1))
	put(width(l.MaxE), uint64(cfg.E-1))
	put(width(l.MaxK), uint64(cfg.K-1))
	f := byte(d)
	if cfg.Act == GptOss {
		f |= 0x04
	}
	if cfg.Layout == Transposed {
		f |= 0x08
	}
	if cfg.Bias {
		f |= 0x10
	}
	out = append(out, f)
	put(width(l.MaxWorld), uint64(W-1))
	put(width(W), uint64(cfg.EP.Rank))
	var rk byte
	if c.Global != nil {
		rk |= 1
		if c.Global.Options.KeepSentinelWeights {
			rk |= 2
		}
	}
	db := byte(mode)
	if c.NonFinite {
		db |= dataNonFinite
	}
	if raw {
		db |= dataRaw
	}
	out = append(out, rk, db, m.Poison)
	put(8, m.Seed)

	weights := c.Routing.Weights
	if g := c.Global; g != nil {
		for _, id := range g.IDs {
			put(width(cfg.G()), uint64(id))
		}
		weights = g.Weights
	} else {
		for _, id := range c.Routing.IDs {
			put(width(cfg.E+1), uint64(id))
		}
	}
	wt := weightBytes(d)
	for _, w := range weights {
		if b, ok := wt[math.Float64bits(w)]; ok {
			out = append(out, b)
			continue
		}
		out = append(out, weightRawByte)
		put(vb, uint64(toBits(d, w)))
	}

	keep := 0 // values that must stay even if zero: through the selector of the last override
	if raw {
		for _, t := range ct {
			for _, x := range *t {
				put(vb, uint64(toBits(d, x)))
			}
		}
	} else {
		for _, o := range diffs {
			keep = len(out) + 1
			out = append(out, byte(o.t+1))
			put(width(len(*ct[o.t])), uint64(o.i))
			put(vb, uint64(toBits(d, (*ct[o.t])[o.i])))
		}
	}
	for len(out) > keep && out[len(out)-1] == 0 {
		out = out[:len(out)-1]
	}
	for i := range out {
		out[i] += byteOrigin
	}

	got, gm := DecodeCase(out, lim)
	if !EqualCases(got, c) || gm.Poison != m.Poison {
		return nil, fmt.Errorf("moe: encode: %s does not round-trip through the codec (a bug in the codec)", cfg)
	}
	return out, nil
}

// weightBytes maps each routing weight that one byte encodes (bit pattern) to its byte.
func weightBytes(d DType) map[uint64]byte {
	m := make(map[uint64]byte, 256)
	for b := 255; b >= 0; b-- {
		if b == weightRawByte {
			continue
		}
		w := decodeWeight(&cursor{b: []byte{byte(b) + byteOrigin}}, d)
		m[math.Float64bits(w)] = byte(b) // lowest byte wins
	}
	return m
}

// sameValue compares two tensor values as a path stores them: bit for bit, NaNs by their
// float32 bits.
func sameValue(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b) && math.Float32bits(float32(a)) == math.Float32bits(float32(b))
	}
	return math.Float64bits(a) == math.Float64bits(b)
}

// EqualCases reports whether a and b are the same case: equal configs (an EP with World 0 and
// one with World 1 are the same), routing ids and weights bit for bit (−0 differs from +0),
// equal global routing (or both nil), the same NonFinite, and every tensor value bit for bit,
// NaNs compared by their float32 bits (what a path stores).
func EqualCases(a, b *Case) bool {
	if a == nil || b == nil {
		return a == b
	}
	ca, cb := a.Config, b.Config
	ca.EP.World, cb.EP.World = ca.EP.WorldSize(), cb.EP.WorldSize()
	if ca != cb || a.NonFinite != b.NonFinite {
		return false
	}
	if !slices.Equal(a.Routing.IDs, b.Routing.IDs) || !equalBits(a.Routing.Weights, b.Routing.Weights) {
		return false
	}
	if (a.Global == nil) != (b.Global == nil) {
		return false
	}
	if g, h := a.Global, b.Global; g != nil {
		if g.Options != h.Options || !slices.Equal(g.IDs, h.IDs) || !equalBits(g.Weights, h.Weights) {
			return false
		}
	}
	for _, p := range [][2][]float64{{a.X, b.X}, {a.W1, b.W1}, {a.B1, b.B1}, {a.W2, b.W2}, {a.B2, b.B2}, {a.DY, b.DY}} {
		if !equalBits(p[0], p[1]) {
			return false
		}
	}
	return true
}

func equalBits(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameValue(a[i], b[i]) {
			return false
		}
	}
	return true
}
