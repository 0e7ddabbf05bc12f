package moe

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// randomInputs returns n byte strings of random lengths in [0, maxLen], drawn from seed.
func randomInputs(seed uint64, n, maxLen int) [][]byte {
	rng := NewRand(seed)
	out := make([][]byte, n)
	for k := range out {
		b := make([]byte, rng.IntN(maxLen+1))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		out[k] = b
	}
	return out
}

func checkDecoded(t *testing.T, in []byte, lim DecodeLimits) (*Case, CaseMeta) {
	t.Helper()
	c, m := DecodeCase(in, lim)
	if err := c.Validate(Limits{}); err != nil {
		t.Fatalf("DecodeCase(%x) is invalid: %v", in, err)
	}
	l := lim.Resolve()
	if c.T > l.MaxT || c.H > l.MaxH || c.I > l.MaxI || c.E > l.MaxE || c.K > l.MaxK || c.EP.WorldSize() > l.MaxWorld ||
		c.Elements() > l.MaxElements {
		t.Fatalf("DecodeCase(%x) = %s (%d values) exceeds %+v", in, c.Config, c.Elements(), l)
	}
	if c.EP.World == 1 {
		t.Fatalf("DecodeCase(%x): EP world 1 must be the zero EP", in)
	}
	c2, m2 := DecodeCase(in, lim)
	if !EqualCases(c, c2) || m != m2 {
		t.Fatalf("DecodeCase(%x) is not deterministic", in)
	}
	return c, m
}

func TestDecodeCaseTotal(t *testing.T) {
	ff := func(n int) []byte { return []byte(strings.Repeat("\xff", n)) }
	for _, tc := range []struct {
		name string
		lim  DecodeLimits
	}{
		{"limits/default", DecodeLimits{}},
		{"limits/ones", DecodeLimits{MaxT: 1, MaxH: 1, MaxI: 1, MaxE: 1, MaxK: 1, MaxWorld: 1, MaxElements: 1}},
		{"limits/negative", DecodeLimits{MaxT: -1, MaxH: -5, MaxI: -1, MaxE: -1, MaxK: -1, MaxWorld: -1, MaxElements: -1}},
		{"limits/wide-ids", DecodeLimits{MaxT: 300, MaxH: 4, MaxI: 4, MaxE: 300, MaxK: 3, MaxWorld: 300, MaxElements: 1 << 16}},
		{"limits/absurd", DecodeLimits{MaxT: 1 << 30, MaxH: 1 << 30, MaxI: 1 << 30, MaxE: 1 << 30, MaxK: 1 << 30, MaxWorld: 1 << 30, MaxElements: 1 << 14}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkDecoded(t, nil, tc.lim)
			for b := 0; b < 256; b++ {
				checkDecoded(t, []byte{byte(b)}, tc.lim)
			}
			for _, n := range []int{1, 5, 19, 20, 64, 300, 5000} {
				checkDecoded(t, ff(n), tc.lim)
			}
			for _, in := range randomInputs(1, 300, 600) {
				checkDecoded(t, in, tc.lim)
			}
		})
	}
}

func TestDecodeCaseEmpty(t *testing.T) {
	c, m := DecodeCase(nil, DecodeLimits{})
	want := Config{T: 1, H: 1, I: 1, E: 1, K: 1}
	if c.Config != want || c.Global != nil || c.NonFinite {
		t.Fatalf("empty input: %s global=%v nonfinite=%v, want %s", c.Config, c.Global != nil, c.NonFinite, want)
	}
	if c.Routing.IDs[0] != 0 || c.Routing.Weights[0] != 1 {
		t.Fatalf("empty input: routing %v, want expert 0 weight 1", c.Routing)
	}
	if (m != CaseMeta{}) || !m.Seeded() {
		t.Fatalf("empty input: meta %+v, want zero", m)
	}
	g, err := Generate(want, c.Routing, 0, Normal)
	if err != nil || !EqualCases(c, g) {
		t.Fatalf("empty input: data is not Generate(seed 0, normal): %v", err)
	}
}

// Inputs of '0' bytes decode as the empty input: Go's minimizer replaces bytes with '0' first,
// so a minimized input is as simple as what the failure needs.
func TestDecodeCaseZeros(t *testing.T) {
	empty, em := DecodeCase(nil, DecodeLimits{})
	for _, n := range []int{1, 5, 19, 20, 21, 64, 1000} {
		c, m := DecodeCase([]byte(strings.Repeat("0", n)), DecodeLimits{})
		if !EqualCases(c, empty) || m != em {
			t.Fatalf("%d '0' bytes decode to %s %+v, want the empty input's %s %+v", n, c.Config, m, empty.Config, em)
		}
	}
	// The minimizer's next choices are small values: '1' is 1, '9' is 9, 'A' is 17.
	c, _ := DecodeCase([]byte("1"), DecodeLimits{})
	if c.T != 2 {
		t.Fatalf(`"1" decodes to T = %d, want 2`, c.T)
	}
}

// Cutting the tail of an input never makes any size larger: missing bytes read as zero, the
// smallest choice.
func TestDecodeCaseTruncationShrinks(t *testing.T) {
	for _, in := range randomInputs(2, 200, 80) {
		full, _ := DecodeCase(in, DecodeLimits{})
		for n := 0; n < len(in); n++ {
			c, _ := DecodeCase(in[:n], DecodeLimits{})
			if c.T > full.T || c.H > full.H || c.I > full.I || c.E > full.E || c.K > full.K ||
				c.EP.WorldSize() > full.EP.WorldSize() || c.Elements() > full.Elements() {
				t.Fatalf("prefix %d of %x decodes to %s, larger than the full input's %s", n, in, c.Config, full.Config)
			}
		}
	}
}

func TestDecodeWeights(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		d    DType
		want float64
	}{
		{"table/one", []byte{0}, BF16, 1},
		{"table/zero", []byte{1}, BF16, 0},
		{"table/neg-zero", []byte{2}, BF16, math.Copysign(0, -1)},
		{"table/half", []byte{3}, FP16, 0.5},
		{"table/minus-one", []byte{4}, FP32, -1},
		{"table/tiny-bf16", []byte{5}, BF16, math.Ldexp(1, -133)},
		{"table/tiny-fp16", []byte{5}, FP16, math.Ldexp(1, -24)},
		{"table/large", []byte{6}, FP16, 4096},
		{"table/huge-fp16", []byte{7}, FP16, 65504},
		{"raw/bf16", []byte{8, 0xc0, 0x3f}, BF16, 1.5},
		{"raw/fp32", []byte{8, 0, 0, 0xc0, 0x3f}, FP32, 1.5},
		{"raw/nan-is-zero", []byte{8, 0xc0, 0x7f}, BF16, 0},
		{"raw/neg-inf-is-max", []byte{8, 0x80, 0xff}, BF16, -BF16.MaxFinite()},
		{"raw/missing-bytes", []byte{8}, FP16, 0},
		{"grid/first", []byte{9}, FP32, float64(float32(1.0 / 119))},
		{"grid/one", []byte{127}, BF16, 1},
		{"grid/neg-first", []byte{128}, BF16, -1.0 / 128},
		{"grid/neg-one", []byte{255}, FP16, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeWeight(&cursor{b: enc(tc.in...)}, tc.d)
			if math.Float64bits(got) != math.Float64bits(tc.want) {
				t.Fatalf("decodeWeight(%x, %s) = %v, want %v", tc.in, tc.d, got, tc.want)
			}
			if !tc.d.Representable(got) {
				t.Fatalf("decodeWeight(%x, %s) = %v is not a %s value", tc.in, tc.d, got, tc.d)
			}
		})
	}
}

// enc turns values into input bytes (each byte reads as its value minus '0').
func enc(v ...byte) []byte {
	b := make([]byte, len(v))
	for i, x := range v {
		b[i] = x + byteOrigin
	}
	return b
}

// header builds the fixed part of an input under the default decode limits.
func header(T, H, I, E, K int, flags byte, world, rank int, routing, data, poison byte, seed uint64) []byte {
	b := []byte{byte(T - 1), byte(H - 1), byte(I - 1), byte(E - 1), byte(K - 1), flags, byte(world - 1), byte(rank), routing, data, poison}
	for k := 0; k < 8; k++ {
		b = append(b, byte(seed>>(8*k)))
	}
	return enc(b...)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestDecodeCaseExamples(t *testing.T) {
	negZero := math.Copysign(0, -1)
	for _, tc := range []struct {
		name  string
		in    []byte
		check func(c *Case, m CaseMeta) string
	}{
		{"config/flags", header(3, 5, 7, 4, 2, 0x1d, 1, 0, 0, 0, 0, 9), func(c *Case, m CaseMeta) string {
			if c.Config != (Config{T: 3, H: 5, I: 7, E: 4, K: 2, Act: GptOss, Layout: Transposed, DType: FP16, Bias: true}) {
				return c.Config.String()
			}
			if m.Seed != 9 || len(c.B1) != 4*2*7 {
				return "seed or biases"
			}
			return ""
		}},
		{"routing/local-sentinel-duplicates", cat(header(1, 1, 1, 4, 4, 0, 1, 0, 0, 0, 0, 0), enc(4, 2, 2, 9), enc(0, 1, 6, 3)),
			func(c *Case, m CaseMeta) string {
				if want := []int32{4, 2, 2, 4}; !slices.Equal(c.Routing.IDs, want) {
					return "ids"
				}
				if want := []float64{1, 0, 4096, 0.5}; !equalBits(c.Routing.Weights, want) {
					return "weights"
				}
				return ""
			}},
		{"routing/global-rank7-keep", cat(header(1, 1, 1, 2, 3, 0, 8, 7, 3, 0, 0, 0), enc(15, 3, 14), enc(3, 3, 4)),
			func(c *Case, m CaseMeta) string {
				if c.EP != (EP{World: 8, Rank: 7}) || c.Global == nil || !c.Global.Options.KeepSentinelWeights {
					return "ep or global"
				}
				if want := []int32{1, 2, 0}; !slices.Equal(c.Routing.IDs, want) {
					return "local ids"
				}
				if want := []float64{0.5, 0.5, -1}; !equalBits(c.Routing.Weights, want) {
					return "sentinel weight not kept"
				}
				return ""
			}},
		{"routing/global-zeroes-sentinel-weight", cat(header(1, 1, 1, 2, 1, 0, 2, 0, 1, 0, 0, 0), enc(3), enc(3)),
			func(c *Case, m CaseMeta) string {
				if c.Routing.IDs[0] != 2 || c.Routing.Weights[0] != 0 || c.Global.Weights[0] != 0.5 {
					return "sentinel weight"
				}
				return ""
			}},
		{"data/raw-bf16", cat(header(1, 2, 1, 1, 1, 0, 1, 0, 0, dataRaw, 0, 0), enc(0, 0), enc(0x80, 0x3f, 0x00, 0x80)),
			func(c *Case, m CaseMeta) string {
				if !m.Raw || c.X[0] != 1 || math.Float64bits(c.X[1]) != math.Float64bits(negZero) || c.W1[0] != 0 {
					return "raw values"
				}
				return ""
			}},
		{"data/override-nan-payload", cat(header(1, 1, 1, 1, 1, 2, 1, 0, 0, 0, 0, 0), enc(0, 0), enc(0, 0, 4, 0, 0, 0, 0xd5, 0x7f)),
			func(c *Case, m CaseMeta) string {
				if m.Overrides != 1 || !c.NonFinite || math.Float32bits(float32(c.DY[0])) != nanPayload {
					return "override"
				}
				return ""
			}},
		{"data/all-specials", header(2, 2, 2, 1, 1, 0, 1, 0, 0, 3<<dataSpecShift|dataNonFinite, 0, 5),
			func(c *Case, m CaseMeta) string {
				if m.Specials != 1 || !c.NonFinite {
					return "meta"
				}
				table := specialValues(BF16, true)
				for _, x := range c.X {
					found := false
					for _, s := range table {
						found = found || sameValue(x, s)
					}
					if !found {
						return "non-special value"
					}
				}
				return ""
			}},
		{"poison/selector", header(1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 6, 0), func(c *Case, m CaseMeta) string {
			if m.Poison != 6 {
				return "poison"
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, m := checkDecoded(t, tc.in, DecodeLimits{})
			if msg := tc.check(c, m); msg != "" {
				t.Fatalf("DecodeCase(%x) = %s %+v: wrong %s", tc.in, c.Config, m, msg)
			}
		})
	}
}

// Random inputs reach every feature the codec promises.
func TestDecodeCaseReaches(t *testing.T) {
	seen := map[string]bool{}
	for _, in := range randomInputs(3, 4000, 400) {
		c, m := DecodeCase(in, DecodeLimits{})
		mark := func(name string, ok bool) {
			if ok {
				seen[name] = true
			}
		}
		mark("dtype/"+c.DType.String(), true)
		mark("act/gptoss", c.Act == GptOss)
		mark("layout/transposed", c.Layout == Transposed)
		mark("bias", c.Bias)
		mark("ep/rank7-of-8", c.EP == EP{World: 8, Rank: 7})
		mark("routing/global", c.Global != nil)
		mark("routing/global-keep", c.Global != nil && c.Global.Options.KeepSentinelWeights)
		mark("meta/raw", m.Raw)
		mark("meta/overrides", m.Overrides > 0)
		mark("meta/poison-6", m.Poison%7 == 6)
		for s, id := range c.Routing.IDs {
			w := c.Routing.Weights[s]
			mark("routing/sentinel", int(id) == c.E)
			mark("routing/sentinel-nonzero-weight", int(id) == c.E && w != 0)
			mark("routing/weight-zero", w == 0 && !math.Signbit(w))
			mark("routing/weight-neg-zero", w == 0 && math.Signbit(w))
			mark("routing/weight-negative", w < 0)
			mark("routing/weight-tiny", w != 0 && math.Abs(w) < c.DType.MinNormal())
			mark("routing/weight-large", math.Abs(w) >= 4096)
			for k := s%c.K + 1; k < c.K; k++ {
				mark("routing/duplicate", c.Routing.IDs[s-s%c.K+k] == id && int(id) < c.E)
			}
		}
		for _, tt := range c.tensors() {
			for _, x := range *tt {
				b := math.Float32bits(float32(x))
				mark("data/nan", math.IsNaN(x))
				mark("data/nan-payload", math.IsNaN(x) && b&0x7fffffff != 0x7fc00000)
				mark("data/nan-negative", math.IsNaN(x) && math.Signbit(x))
				mark("data/+inf", math.IsInf(x, 1))
				mark("data/-inf", math.IsInf(x, -1))
				mark("data/neg-zero", x == 0 && math.Signbit(x))
				mark("data/subnormal", x != 0 && math.Abs(x) < c.DType.MinNormal())
				mark("data/max-finite", math.Abs(x) == c.DType.MaxFinite())
			}
		}
	}
	for _, want := range []string{"dtype/bf16", "dtype/fp16", "dtype/fp32", "act/gptoss", "layout/transposed", "bias",
		"ep/rank7-of-8", "routing/global", "routing/global-keep", "meta/raw", "meta/overrides", "meta/poison-6",
		"routing/sentinel", "routing/sentinel-nonzero-weight", "routing/weight-zero", "routing/weight-neg-zero",
		"routing/weight-negative", "routing/weight-tiny", "routing/weight-large", "routing/duplicate",
		"data/nan", "data/nan-payload", "data/nan-negative", "data/+inf", "data/-inf", "data/neg-zero",
		"data/subnormal", "data/max-finite"} {
		if !seen[want] {
			t.Errorf("no random input reached %s", want)
		}
	}
}

func TestEncodeCaseRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		lim  DecodeLimits
	}{
		{"limits/default", DecodeLimits{}},
		{"limits/wide-ids", DecodeLimits{MaxT: 300, MaxH: 4, MaxI: 4, MaxE: 300, MaxK: 3, MaxWorld: 300, MaxElements: 1 << 16}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, in := range randomInputs(4, 300, 500) {
				c, m := DecodeCase(in, tc.lim)
				enc, err := EncodeCase(c, m, tc.lim)
				if err != nil {
					t.Fatalf("EncodeCase(DecodeCase(%x)): %v", in, err)
				}
				c2, m2 := DecodeCase(enc, tc.lim)
				if !EqualCases(c, c2) || m2.Poison != m.Poison {
					t.Fatalf("EncodeCase(DecodeCase(%x)) = %x decodes to a different case", in, enc)
				}
			}
		})
	}
}

func TestEncodeCaseSeeded(t *testing.T) {
	cfg := Config{T: 8, H: 16, I: 8, E: 4, K: 2, EP: EP{World: 2, Rank: 1}, Bias: true, DType: FP16}
	r, g, err := RandomGlobalRouting(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Generate(cfg, r, 123, Integer)
	if err != nil {
		t.Fatal(err)
	}
	c.Global = g
	enc, err := EncodeCase(c, CaseMeta{Seed: 123, Data: Integer, Poison: 1}, DecodeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	d, m := DecodeCase(enc, DecodeLimits{})
	if !EqualCases(c, d) || !m.Seeded() || m.Seed != 123 || m.Data != Integer || m.Poison != 1 {
		t.Fatalf("seeded case: decoded meta %+v, equal %v", m, EqualCases(c, d))
	}
	// header 19 bytes, 16 global ids, at most 3 bytes per weight (escape and fp16 bits)
	if len(enc) > 19+16+3*16 {
		t.Fatalf("seeded case encodes to %d bytes, want the data described by its seed", len(enc))
	}
	// One changed value becomes one override, not raw data.
	c.X[5] = math.Inf(-1)
	c.NonFinite = true
	enc2, err := EncodeCase(c, CaseMeta{Seed: 123, Data: Integer}, DecodeLimits{})
	if err != nil {
		t.Fatal(err)
	}
	d, m = DecodeCase(enc2, DecodeLimits{})
	if !EqualCases(c, d) || m.Overrides != 1 || m.Raw {
		t.Fatalf("one changed value: meta %+v, equal %v", m, EqualCases(c, d))
	}
}

func TestEncodeCaseErrors(t *testing.T) {
	small, _ := DecodeCase(nil, DecodeLimits{})
	big := small.Clone()
	big.Config.T = 40
	big.Routing = Routing{IDs: make([]int32, 40), Weights: make([]float64, 40)}
	big.X, big.DY = make([]float64, 40), make([]float64, 40)
	bad := small.Clone()
	bad.X[0] = 0.1
	nan := small.Clone()
	nan.Config.DType = FP16
	nan.X[0] = nanFrom32(0x7fc00001)
	nan.NonFinite = true
	for _, tc := range []struct {
		name string
		c    *Case
		want string
	}{
		{"limit/T", big, "T (tokens) = 40 exceeds the decode limit 32"},
		{"invalid/value", bad, "X (hidden)[0] = 0.1 is not a bf16 value"},
		{"invalid/nil", nil, "nil case"},
		{"nan/payload-lost", nan, "X[0] is a NaN with float32 bits 0x7fc00001 that fp16 storage does not keep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := EncodeCase(tc.c, CaseMeta{}, DecodeLimits{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("EncodeCase: error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestEqualCases(t *testing.T) {
	base, _ := DecodeCase(cat(header(2, 2, 2, 2, 2, 0x10, 2, 1, 1, 0, 0, 3)), DecodeLimits{})
	for _, tc := range []struct {
		name   string
		change func(c *Case)
		equal  bool
	}{
		{"same/clone", func(c *Case) {}, true},
		{"same/world-one-vs-zero", func(c *Case) { c.EP = EP{World: 2, Rank: 1} }, true},
		{"same/nan-float64-low-bits", func(c *Case) { c.X[0] = math.NaN(); c.NonFinite = true }, false},
		{"diff/neg-zero-weight", func(c *Case) { c.Global.Weights[0] = math.Copysign(0, -1) }, false},
		{"diff/nonfinite", func(c *Case) { c.NonFinite = true }, false},
		{"diff/global-nil", func(c *Case) { c.Global = nil }, false},
		{"diff/keep", func(c *Case) { c.Global.Options.KeepSentinelWeights = true }, false},
		{"diff/bias", func(c *Case) { c.B2[1] = 1 }, false},
		{"diff/id", func(c *Case) { c.Routing.IDs[3] = 1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base.Clone()
			tc.change(c)
			if got := EqualCases(base, c); got != tc.equal {
				t.Fatalf("EqualCases = %v, want %v", got, tc.equal)
			}
		})
	}
	// NaNs compare by their float32 bits: math.NaN's float64-only low bit does not count.
	a, b := base.Clone(), base.Clone()
	a.X[0], b.X[0] = math.NaN(), nanFrom32(nanQuiet)
	if !EqualCases(a, b) {
		t.Fatal("NaNs with equal float32 bits compare different")
	}
}

// BenchmarkDecodeCase decodes random inputs of the given length under the default decode
// limits (the fuzz targets' cost per input, before the target's own work).
func BenchmarkDecodeCase(b *testing.B) {
	for _, n := range []int{0, 32, 256} {
		b.Run("len="+itoa(n), func(b *testing.B) {
			ins := randomInputs(uint64(n), 64, n)
			for i := range ins {
				ins[i] = append(ins[i], make([]byte, n-len(ins[i]))...)
			}
			var values int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, _ := DecodeCase(ins[i%len(ins)], DecodeLimits{})
				values += c.Elements()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cases/s")
			b.ReportMetric(float64(values)/float64(b.N), "values/case")
		})
	}
}

func BenchmarkEncodeCase(b *testing.B) {
	ins := randomInputs(5, 64, 256)
	cs := make([]*Case, len(ins))
	ms := make([]CaseMeta, len(ins))
	for i, in := range ins {
		cs[i], ms[i] = DecodeCase(in, DecodeLimits{})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := EncodeCase(cs[i%len(cs)], ms[i%len(cs)], DecodeLimits{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cases/s")
}

func itoa(n int) string { return fmt.Sprint(n) }
