package rawcase

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// encode is Encode (the bits a worker client sends).
func encode(c *moe.Case) *Case { return Encode(c) }

// genCase draws a valid case of dtype d (global routing when ep, biases when bias).
func genCase(t *testing.T, d moe.DType, seed uint64, bias, ep bool) *moe.Case {
	t.Helper()
	rng := moe.NewRand(seed)
	cfg := moe.Config{T: 1 + rng.IntN(9), H: 1 + rng.IntN(12), I: 1 + rng.IntN(9), E: 1 + rng.IntN(5), K: 1 + rng.IntN(3),
		DType: d, Bias: bias, Act: moe.Activation(rng.IntN(2)), Layout: moe.Layout(rng.IntN(2))}
	if ep {
		cfg.EP = moe.EP{World: 2 + rng.IntN(3)}
		cfg.EP.Rank = rng.IntN(cfg.EP.World)
	}
	r, g, err := moe.RandomGlobalRouting(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	c, err := moe.Generate(cfg, r, seed+1, moe.DataModes()[rng.IntN(len(moe.DataModes()))])
	if err != nil {
		t.Fatal(err)
	}
	if ep {
		c.Global = g
	}
	return c
}

// hostile is one way to damage a case's bits.
type hostile struct {
	name string
	bad  func(k *Case, rng *rand.Rand)
}

// patterns are storage patterns of each dtype worth planting: NaNs (quiet, signalling,
// with payloads), ±Inf, ±0, the largest finite, subnormals.
func patterns(d moe.DType) []uint32 {
	switch d {
	case moe.BF16:
		return []uint32{0x7fc0, 0xffc1, 0x7f81, 0x7f80, 0xff80, 0x0000, 0x8000, 0x7f7f, 0x0001, 0x807f}
	case moe.FP16:
		return []uint32{0x7e00, 0xfe01, 0x7c01, 0x7c00, 0xfc00, 0x0000, 0x8000, 0x7bff, 0x0001, 0x83ff}
	}
	return []uint32{0x7fc00000, 0xffc00001, 0x7f800001, 0x7f800000, 0xff800000, 0, 0x80000000, 0x7f7fffff, 1, 0x807fffff}
}

func plant(d moe.DType, b []byte, rng *rand.Rand) {
	w := d.Bits() / 8
	if len(b) < w {
		return
	}
	p := patterns(d)[rng.IntN(len(patterns(d)))]
	i := rng.IntN(len(b) / w)
	if w == 2 {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(p))
	} else {
		binary.LittleEndian.PutUint32(b[4*i:], p)
	}
}

var hostiles = []hostile{
	{"none", func(*Case, *rand.Rand) {}},
	{"pattern-x", func(k *Case, rng *rand.Rand) { plant(k.Config.DType, k.X, rng) }},
	{"pattern-w1", func(k *Case, rng *rand.Rand) { plant(k.Config.DType, k.W1, rng) }},
	{"pattern-w2", func(k *Case, rng *rand.Rand) { plant(k.Config.DType, k.W2, rng) }},
	{"pattern-dy", func(k *Case, rng *rand.Rand) { plant(k.Config.DType, k.DY, rng) }},
	{"pattern-b1", func(k *Case, rng *rand.Rand) { plant(k.Config.DType, k.B1, rng) }},
	{"pattern-b2", func(k *Case, rng *rand.Rand) { plant(k.Config.DType, k.B2, rng) }},
	{"pattern-everywhere", func(k *Case, rng *rand.Rand) {
		for _, b := range [][]byte{k.X, k.W1, k.W2, k.DY, k.B1, k.B2} {
			plant(k.Config.DType, b, rng)
		}
	}},
	{"pattern-rw", func(k *Case, rng *rand.Rand) { plant(k.Config.DType, k.RW, rng) }},
	{"pattern-global-rw", func(k *Case, rng *rand.Rand) {
		if k.Global != nil {
			plant(k.Config.DType, k.Global.RW, rng)
		}
	}},
	{"id", func(k *Case, rng *rand.Rand) {
		ids := []int32{-1, int32(k.Config.E), int32(k.Config.E) + 1, math.MaxInt32, math.MinInt32, 0}
		binary.LittleEndian.PutUint32(k.IDs[4*rng.IntN(len(k.IDs)/4):], uint32(ids[rng.IntN(len(ids))]))
	}},
	{"global-id", func(k *Case, rng *rand.Rand) {
		if k.Global == nil {
			return
		}
		ids := []int64{-1, int64(k.Config.G()), int64(k.Config.G()) - 1, 0, math.MaxInt64, math.MinInt64}
		binary.LittleEndian.PutUint64(k.Global.IDs[8*rng.IntN(len(k.Global.IDs)/8):], uint64(ids[rng.IntN(len(ids))]))
	}},
	{"neg-zero-rw", func(k *Case, rng *rand.Rand) { // -0 equals +0: the global map still matches
		d := k.Config.DType
		for i := range len(k.RW) / (d.Bits() / 8) {
			if value(d, k.RW, i) == 0 {
				if d.Bits() == 16 {
					binary.LittleEndian.PutUint16(k.RW[2*i:], 0x8000)
				} else {
					binary.LittleEndian.PutUint32(k.RW[4*i:], 0x80000000)
				}
			}
		}
	}},
	{"short-x", func(k *Case, rng *rand.Rand) { k.X = k.X[:len(k.X)-k.Config.DType.Bits()/8] }},
	{"odd-w2", func(k *Case, rng *rand.Rand) { k.W2 = k.W2[:len(k.W2)-1] }},
	{"long-dy", func(k *Case, rng *rand.Rand) { k.DY = append(k.DY, k.DY...) }},
	{"short-ids", func(k *Case, rng *rand.Rand) { k.IDs = k.IDs[:len(k.IDs)-4] }},
	{"short-rw", func(k *Case, rng *rand.Rand) { k.RW = k.RW[:len(k.RW)-k.Config.DType.Bits()/8] }},
	{"bias-off", func(k *Case, rng *rand.Rand) {
		if !k.Config.Bias {
			k.B1 = []byte{}
		}
	}},
	{"no-bias-tensor", func(k *Case, rng *rand.Rand) {
		if k.Config.Bias {
			k.B2 = nil
		}
	}},
	{"config", func(k *Case, rng *rand.Rand) { k.Config.K = 0 }},
	{"nonfinite-flag", func(k *Case, rng *rand.Rand) { k.NonFinite = true; plant(k.Config.DType, k.W1, rng) }},
}

// Validate accepts exactly the cases moe.Case.Validate accepts once decoded, with the same
// error for the same first problem, on generated cases of every dtype with hostile damage.
func TestValidateMatchesMoe(t *testing.T) {
	n, refused := 0, 0
	for _, d := range moe.DTypes() {
		for seed := uint64(1); seed <= 40; seed++ {
			for _, h := range hostiles {
				for _, bias := range []bool{false, true} {
					for _, ep := range []bool{false, true} {
						c := genCase(t, d, seed, bias, ep)
						k := encode(c)
						h.bad(k, moe.NewRand(seed*977+uint64(len(h.name))))
						name := fmt.Sprintf("%s/%s/seed=%d/bias=%v/ep=%v", h.name, d, seed, bias, ep)
						kc, err := Validate(k, moe.Limits{})
						want := k.Decode().Validate(moe.Limits{})
						n++
						if want != nil {
							refused++
						}
						switch {
						case (err == nil) != (want == nil):
							t.Fatalf("%s: Validate %v, moe %v", name, err, want)
						case err != nil && err.Error() != want.Error() && h.name != "odd-w2":
							// (a part value has no decoded form: both refuse it, in their words)
							t.Fatalf("%s: Validate %q, moe %q", name, err, want)
						case err == nil && kc.Case() != k:
							t.Fatalf("%s: the checked case is not the case", name)
						}
					}
				}
			}
		}
	}
	if refused < n/3 || refused == n {
		t.Errorf("%d of %d cases refused: the hostile damage does not exercise both sides", refused, n)
	}
}

// An encoded valid case passes, with its routing decoded as moe holds it.
func TestValidateMeta(t *testing.T) {
	for _, d := range moe.DTypes() {
		c := genCase(t, d, 5, true, true)
		k, err := Validate(encode(c), moe.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		m := k.Meta()
		if m.X != nil || m.W1 != nil || m.Config != c.Config || len(m.Routing.IDs) != c.S() || m.Global == nil {
			t.Fatalf("%s: meta %+v", d, m.Config)
		}
		for s := range m.Routing.IDs {
			if m.Routing.IDs[s] != c.Routing.IDs[s] || m.Routing.Weights[s] != c.Routing.Weights[s] || m.Global.IDs[s] != c.Global.IDs[s] {
				t.Fatalf("%s: slot %d differs", d, s)
			}
		}
	}
	var zero Checked
	if zero.Case() != nil || zero.Meta() != nil {
		t.Error("the zero Checked holds a case")
	}
	if _, err := Validate(nil, moe.Limits{}); err == nil {
		t.Error("nil case accepted")
	}
}

// Key tells cases apart by every byte and flag, and is stable.
func TestKey(t *testing.T) {
	c := encode(genCase(t, moe.BF16, 3, true, true))
	k := c.Key()
	if c.Key() != k {
		t.Fatal("key not stable")
	}
	seen := map[uint64]string{k: "base"}
	for name, f := range map[string]func(*Case){
		"x":         func(c *Case) { c.X[0] ^= 1 },
		"dy":        func(c *Case) { c.DY[len(c.DY)-1] ^= 0x80 },
		"nonfinite": func(c *Case) { c.NonFinite = true },
		"keep":      func(c *Case) { c.Global.Options.KeepSentinelWeights = true },
		"local":     func(c *Case) { c.Global = nil },
		"moved":     func(c *Case) { c.B1, c.B2 = c.B2, c.B1 },
	} {
		d := encode(genCase(t, moe.BF16, 3, true, true))
		f(d)
		if prev, dup := seen[d.Key()]; dup {
			t.Errorf("%s: same key as %s", name, prev)
		}
		seen[d.Key()] = name
	}
}
