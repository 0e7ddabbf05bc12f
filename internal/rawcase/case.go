package rawcase

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"

	"github.com/moecheck/moecheck/moe"
)

// Case is a case with its tensors as little-endian storage bytes: the float tensors and the
// routing weights as bits of Config.DType (2 or 4 bytes a value), the local expert ids as
// int32, the global ids as int64. The byte slices are read, never written.
type Case struct {
	Config    moe.Config
	NonFinite bool // NaN and ±Inf allowed in X, W1, W2, B1, B2 and DY (moe.Case.NonFinite)
	// X (T×H), W1, W2 (in Config.Layout), B1, B2 (nil without Config.Bias) and DY (T×H).
	X, W1, B1, W2, B2, DY []byte
	// IDs (T·K int32 local expert ids in [0, E]) and RW (T·K routing weights): the routing
	// on this rank (moe.Routing).
	IDs, RW []byte
	// Global, when set, is the router's routing in global expert ids (moe.GlobalRouting).
	Global *Global
}

// Global is a moe.GlobalRouting as bytes: T·K int64 global ids and T·K routing weights.
type Global struct {
	IDs, RW []byte
	Options moe.GlobalOptions
}

// Checked is a Case that passed Validate, with its routing decoded. The holder must not
// change the case's bytes afterwards. The zero Checked holds no case.
type Checked struct {
	c    *Case
	meta *moe.Case
}

// Case returns the checked case (nil for the zero Checked).
func (k Checked) Case() *Case { return k.c }

// Meta returns the case without its float tensors (X, W1, B1, W2, B2 and DY nil): config,
// NonFinite, the routing and the global routing decoded to moe's types. Read only.
func (k Checked) Meta() *moe.Case { return k.meta }

// tensorName is each float tensor's name in moe.Case.Validate's messages.
var tensorNames = [...]string{"X (hidden)", "W1 (gate_up_proj)", "W2 (down_proj)", "dY", "B1 (gate_up bias)", "B2 (down bias)"}

// Validate checks c as moe.Case.Validate(lim) checks the case c decodes to (Decode), with
// the same error for the same first problem: the config, the routing and the global routing
// by moe's own checks on their decoded values, then each float tensor's length and, unless
// c.NonFinite, that it holds no NaN or ±Inf (every other storage pattern is a dtype value).
func Validate(c *Case, lim moe.Limits) (Checked, error) {
	if c == nil {
		return Checked{}, fmt.Errorf("moe: nil case")
	}
	if err := c.Config.Validate(lim); err != nil {
		return Checked{}, err
	}
	meta, err := c.meta()
	if err != nil {
		return Checked{}, err
	}
	if err := meta.ValidateRouting(lim); err != nil {
		return Checked{}, err
	}
	d, cfg := c.Config.DType, c.Config
	w := d.Bits() / 8
	type tensor struct {
		b []byte
		n int
	}
	ts := []tensor{{c.X, cfg.LenX()}, {c.W1, cfg.LenW1()}, {c.W2, cfg.LenW2()}, {c.DY, cfg.LenX()}}
	if cfg.Bias {
		ts = append(ts, tensor{c.B1, cfg.LenB1()}, tensor{c.B2, cfg.LenB2()})
	} else if c.B1 != nil || c.B2 != nil {
		return Checked{}, fmt.Errorf("moe: biases given but Bias is off")
	}
	for k, t := range ts {
		if len(t.b)%w != 0 {
			return Checked{}, fmt.Errorf("moe: %s has %d bytes, not a whole number of %s values", tensorNames[k], len(t.b), d)
		}
		if len(t.b)/w != t.n {
			return Checked{}, fmt.Errorf("moe: %s has %d values, want %d for %s", tensorNames[k], len(t.b)/w, t.n, cfg)
		}
		if c.NonFinite {
			continue
		}
		if i := firstNonFinite(d, t.b); i >= 0 {
			return Checked{}, fmt.Errorf("moe: %s[%d] = %v: non-finite data needs NonFinite", tensorNames[k], i, value(d, t.b, i))
		}
	}
	return Checked{c: c, meta: meta}, nil
}

// meta decodes the routing (and global routing) of c into a moe.Case without float tensors.
func (c *Case) meta() (*moe.Case, error) {
	d := c.Config.DType
	m := &moe.Case{Config: c.Config, NonFinite: c.NonFinite}
	var err error
	if m.Routing.IDs, err = int32s(c.IDs, "routing ids"); err != nil {
		return nil, err
	}
	if m.Routing.Weights, err = float64s(d, c.RW, "routing weights"); err != nil {
		return nil, err
	}
	if g := c.Global; g != nil {
		mg := &moe.GlobalRouting{Options: g.Options}
		if len(g.IDs)%8 != 0 {
			return nil, fmt.Errorf("moe: global routing ids of %d bytes, not a whole number of int64", len(g.IDs))
		}
		mg.IDs = make([]int64, len(g.IDs)/8)
		for i := range mg.IDs {
			mg.IDs[i] = int64(binary.LittleEndian.Uint64(g.IDs[8*i:]))
		}
		if mg.Weights, err = float64s(d, g.RW, "global routing weights"); err != nil {
			return nil, err
		}
		m.Global = mg
	}
	return m, nil
}

func int32s(b []byte, what string) ([]int32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("moe: %s of %d bytes, not a whole number of int32", what, len(b))
	}
	v := make([]int32, len(b)/4)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

func float64s(d moe.DType, b []byte, what string) ([]float64, error) {
	w := d.Bits() / 8
	if len(b)%w != 0 {
		return nil, fmt.Errorf("moe: %s of %d bytes, not a whole number of %s values", what, len(b), d)
	}
	v := make([]float64, len(b)/w)
	for i := range v {
		v[i] = value(d, b, i)
	}
	return v, nil
}

// value is element i of b (storage bits of d) as float64, exactly (NaN payloads kept as
// moe.DType.FromBits keeps them).
func value(d moe.DType, b []byte, i int) float64 {
	if d.Bits() == 16 {
		return float64(d.FromBits(uint32(binary.LittleEndian.Uint16(b[2*i:]))))
	}
	return float64(d.FromBits(binary.LittleEndian.Uint32(b[4*i:])))
}

// Encode returns case c as its bits: the float tensors and routing weights encoded with
// moe.DType.PutBits (the bits a worker client sends), the ids as they are.
func Encode(c *moe.Case) *Case {
	d := c.DType
	f := func(v []float64) []byte {
		if v == nil {
			return nil
		}
		b := make([]byte, len(v)*(d.Bits()/8))
		d.PutBits(b, v)
		return b
	}
	ids := make([]byte, 4*len(c.Routing.IDs))
	for i, x := range c.Routing.IDs {
		binary.LittleEndian.PutUint32(ids[4*i:], uint32(x))
	}
	k := &Case{Config: c.Config, NonFinite: c.NonFinite, X: f(c.X), W1: f(c.W1), B1: f(c.B1), W2: f(c.W2), B2: f(c.B2), DY: f(c.DY),
		IDs: ids, RW: f(c.Routing.Weights)}
	if g := c.Global; g != nil {
		gi := make([]byte, 8*len(g.IDs))
		for i, x := range g.IDs {
			binary.LittleEndian.PutUint64(gi[8*i:], uint64(x))
		}
		k.Global = &Global{IDs: gi, RW: f(g.Weights), Options: g.Options}
	}
	return k
}

// Decode returns the moe.Case c holds (its values exactly; NaN payloads as
// moe.DType.FromBits keeps them). Byte counts that are not whole values are cut to whole ones.
func (c *Case) Decode() *moe.Case {
	return c.DecodeWith(func(d moe.DType, b []byte) []float64 {
		v, _ := float64s(d, b[:len(b)/(d.Bits()/8)*(d.Bits()/8)], "")
		return v
	})
}

// DecodeWith is Decode with the float tensors decoded by fl (e.g. over the cores), which
// must decode whole values exactly and ignore a partial last one.
func (c *Case) DecodeWith(fl func(d moe.DType, b []byte) []float64) *moe.Case {
	d := c.Config.DType
	f := func(b []byte) []float64 {
		if b == nil {
			return nil
		}
		return fl(d, b)
	}
	m := &moe.Case{Config: c.Config, NonFinite: c.NonFinite, X: f(c.X), W1: f(c.W1), B1: f(c.B1), W2: f(c.W2), B2: f(c.B2), DY: f(c.DY)}
	m.Routing.IDs, _ = int32s(c.IDs[:len(c.IDs)/4*4], "")
	m.Routing.Weights = f(c.RW)
	if g := c.Global; g != nil {
		mg := &moe.GlobalRouting{IDs: make([]int64, len(g.IDs)/8), Weights: f(g.RW), Options: g.Options}
		for i := range mg.IDs {
			mg.IDs[i] = int64(binary.LittleEndian.Uint64(g.IDs[8*i:]))
		}
		m.Global = mg
	}
	return m
}

// Key is a hash of the whole case (config, flags and every byte): the identity under which a
// backend counts a case's runs (fault.RunOrder), as fault.CaseKey is for a moe.Case.
func (c *Case) Key() uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%+v|%v|", c.Config, c.NonFinite)
	var n [8]byte
	put := func(b []byte) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, b := range [][]byte{c.IDs, c.RW, c.X, c.W1, c.B1, c.W2, c.B2, c.DY} {
		put(b)
	}
	if g := c.Global; g != nil {
		fmt.Fprintf(h, "|%+v|", g.Options)
		put(g.IDs)
		put(g.RW)
	} else {
		binary.LittleEndian.PutUint64(n[:], math.MaxUint64)
		h.Write(n[:])
	}
	return h.Sum64()
}
