package moe_test

import (
	"math"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

func goodConfig() moe.Config {
	return moe.Config{T: 4, H: 3, I: 2, E: 2, K: 2, DType: moe.BF16, Bias: true, EP: moe.EP{World: 2, Rank: 1}}
}

// TestConfigValidate checks every Config error and that the zero Limits are the defaults.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *moe.Config)
		lim  moe.Limits
		want string // "" for valid
	}{
		{"valid", func(*moe.Config) {}, moe.Limits{}, ""},
		{"zero-T", func(c *moe.Config) { c.T = 0 }, moe.Limits{}, "T (tokens) = 0: must be at least 1"},
		{"negative-H", func(c *moe.Config) { c.H = -1 }, moe.Limits{}, "H (hidden) = -1"},
		{"I-over-limit", func(c *moe.Config) { c.I = 5 }, moe.Limits{MaxI: 4}, "I (intermediate) = 5 exceeds the limit 4"},
		{"E-over-default", func(c *moe.Config) { c.E = moe.DefaultLimits().MaxE + 1 }, moe.Limits{}, "E (local experts)"},
		{"K-zero", func(c *moe.Config) { c.K = 0 }, moe.Limits{}, "K (top-k) = 0"},
		{"world-negative", func(c *moe.Config) { c.EP = moe.EP{World: -2} }, moe.Limits{}, "EP world size -2"},
		{"world-over-limit", func(c *moe.Config) { c.EP = moe.EP{World: 8} }, moe.Limits{MaxWorld: 4}, "EP world size 8 outside [1, 4]"},
		{"rank-out-of-range", func(c *moe.Config) { c.EP = moe.EP{World: 2, Rank: 2} }, moe.Limits{}, "EP rank 2 outside [0, 2)"},
		{"rank-without-world", func(c *moe.Config) { c.EP = moe.EP{Rank: 1} }, moe.Limits{}, "EP rank 1 outside [0, 1)"},
		{"global-experts", func(c *moe.Config) { c.EP = moe.EP{World: 4} }, moe.Limits{MaxG: 7}, "E·W = 2·4 exceeds the limit 7"},
		{"dtype", func(c *moe.Config) { c.DType = 9 }, moe.Limits{}, "invalid dtype 9"},
		{"activation", func(c *moe.Config) { c.Act = 5 }, moe.Limits{}, "invalid activation 5"},
		{"layout", func(c *moe.Config) { c.Layout = 3 }, moe.Limits{}, "invalid layout 3"},
		{"elements", func(c *moe.Config) {}, moe.Limits{MaxElements: 10}, "over the limit of 10 values"},
		{"slots", func(c *moe.Config) {}, moe.Limits{MaxSlots: 7}, "slots T·K = 8 exceeds the limit 7"},
	}
	for _, tt := range tests {
		c := goodConfig()
		tt.edit(&c)
		err := c.Validate(tt.lim)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	c := goodConfig()
	if c.S() != 8 || c.G() != 4 || c.Sentinel() != 2 || c.LenX() != 12 || c.LenW1() != 24 || c.LenW2() != 12 ||
		c.LenB1() != 8 || c.LenB2() != 6 || c.Elements() != 2*12+3*12+8+8+6 {
		t.Errorf("derived sizes wrong: %d %d %d %d %d %d %d %d %d", c.S(), c.G(), c.Sentinel(), c.LenX(), c.LenW1(), c.LenW2(), c.LenB1(), c.LenB2(), c.Elements())
	}
	if s := c.String(); s != "T=4 H=3 I=2 E=2 K=2 bf16 swiglu standard ep=1/2 bias" {
		t.Errorf("String() = %q", s)
	}
}

// TestParse checks the name parsers and their errors.
func TestParse(t *testing.T) {
	for _, s := range []string{"swiglu", "SiLU", "gpt-oss", "gptoss", "gpt_oss"} {
		if _, err := moe.ParseActivation(s); err != nil {
			t.Errorf("ParseActivation(%q): %v", s, err)
		}
	}
	for _, s := range []string{"standard", "std", "Transposed", "t"} {
		if _, err := moe.ParseLayout(s); err != nil {
			t.Errorf("ParseLayout(%q): %v", s, err)
		}
	}
	for _, m := range moe.DataModes() {
		if got, err := moe.ParseDataMode(m.String()); err != nil || got != m {
			t.Errorf("ParseDataMode(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := moe.ParseActivation("relu"); err == nil {
		t.Error("ParseActivation(relu) succeeded")
	}
	if _, err := moe.ParseLayout("diagonal"); err == nil {
		t.Error("ParseLayout(diagonal) succeeded")
	}
	if _, err := moe.ParseDataMode("wild"); err == nil {
		t.Error("ParseDataMode(wild) succeeded")
	}
}

// TestRoutingValidate checks every Routing error; errors name token and slot.
func TestRoutingValidate(t *testing.T) {
	cfg := goodConfig()
	good := func() moe.Routing {
		return moe.Routing{IDs: []int32{0, 1, 2, 0, 2, 2, 1, 1}, Weights: []float64{0.5, 0.25, 0, 1, 0, 0.75, 0.125, 1}}
	}
	tests := []struct {
		name string
		edit func(r *moe.Routing)
		want string
	}{
		{"valid", func(*moe.Routing) {}, ""},
		{"sentinel-with-weight", func(r *moe.Routing) { r.Weights[2] = 0.5 }, ""},
		{"duplicates", func(r *moe.Routing) { r.IDs[1] = 0 }, ""},
		{"short-ids", func(r *moe.Routing) { r.IDs = r.IDs[:7] }, "routing has 7 ids, want T·K = 4·2 = 8"},
		{"long-weights", func(r *moe.Routing) { r.Weights = append(r.Weights, 0) }, "routing has 9 weights"},
		{"id-above-sentinel", func(r *moe.Routing) { r.IDs[5] = 3 }, "routing id 3 at token 2 slot 1 outside [0, 2]"},
		{"negative-id", func(r *moe.Routing) { r.IDs[0] = -1 }, "routing id -1 at token 0 slot 0"},
		{"nan-weight", func(r *moe.Routing) { r.Weights[3] = math.NaN() }, "token 1 slot 1 is NaN: weights must be finite"},
		{"inf-weight", func(r *moe.Routing) { r.Weights[4] = math.Inf(1) }, "is +Inf"},
		{"not-bf16", func(r *moe.Routing) { r.Weights[0] = 0.1 }, "routing weight 0.1 at token 0 slot 0 is not a bf16 value"},
	}
	for _, tt := range tests {
		r := good()
		tt.edit(&r)
		err := r.Validate(cfg)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	r := good()
	cl := r.Clone()
	cl.IDs[0], cl.Weights[0] = 1, 1
	if r.IDs[0] != 0 || r.Weights[0] != 0.5 {
		t.Error("Routing.Clone shares storage")
	}
}

// TestFromGlobal checks the EP map: ownership, local ids, zeroed or kept sentinel weights,
// and its errors.
func TestFromGlobal(t *testing.T) {
	cfg := goodConfig() // E 2, world 2, rank 1: owns global experts 2 and 3
	ids := []int64{0, 2, 3, 1, 3, 3, 2, 0}
	w := []float64{0.5, 0.25, 1, 0.75, 0.5, 0.5, 0.125, 1}
	r, err := moe.FromGlobal(cfg, ids, w, moe.GlobalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := []int32{2, 0, 1, 2, 1, 1, 0, 2}
	wantW := []float64{0, 0.25, 1, 0, 0.5, 0.5, 0.125, 0}
	for s := range ids {
		if r.IDs[s] != wantIDs[s] || r.Weights[s] != wantW[s] {
			t.Errorf("slot %d: id %d weight %v, want %d %v", s, r.IDs[s], r.Weights[s], wantIDs[s], wantW[s])
		}
	}
	k, err := moe.FromGlobal(cfg, ids, w, moe.GlobalOptions{KeepSentinelWeights: true})
	if err != nil || k.Weights[0] != 0.5 || k.IDs[0] != 2 {
		t.Errorf("KeepSentinelWeights: %v %v", k, err)
	}
	if _, err := moe.FromGlobal(cfg, ids[:3], w, moe.GlobalOptions{}); err == nil || !strings.Contains(err.Error(), "3 ids and 8 weights") {
		t.Errorf("short ids: %v", err)
	}
	bad := append([]int64(nil), ids...)
	bad[6] = 4
	if _, err := moe.FromGlobal(cfg, bad, w, moe.GlobalOptions{}); err == nil || !strings.Contains(err.Error(), "global expert id 4 at token 3 slot 0 outside [0, 4)") {
		t.Errorf("id out of range: %v", err)
	}
	badW := append([]float64(nil), w...)
	badW[1] = math.NaN()
	if _, err := moe.FromGlobal(cfg, ids, badW, moe.GlobalOptions{}); err == nil {
		t.Error("NaN weight of a local slot accepted")
	}
}

// TestCaseValidate checks Case.Validate's errors (never a panic) on a generated case.
func TestCaseValidate(t *testing.T) {
	cfg := goodConfig()
	r, g, err := moe.RandomGlobalRouting(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	good := func() *moe.Case {
		c, err := moe.Generate(cfg, r, 5, moe.Normal)
		if err != nil {
			t.Fatal(err)
		}
		c.Global = &moe.GlobalRouting{IDs: g.IDs, Weights: g.Weights}
		return c
	}
	tests := []struct {
		name string
		edit func(c *moe.Case) *moe.Case
		want string
	}{
		{"valid", func(c *moe.Case) *moe.Case { return c }, ""},
		{"nil", func(*moe.Case) *moe.Case { return nil }, "nil case"},
		{"bad-config", func(c *moe.Case) *moe.Case { c.T = 0; return c }, "T (tokens) = 0"},
		{"bad-routing", func(c *moe.Case) *moe.Case { c.Routing.IDs[0] = 9; return c }, "routing id 9"},
		{"short-X", func(c *moe.Case) *moe.Case { c.X = c.X[:5]; return c }, "X (hidden) has 5 values, want 12"},
		{"short-W1", func(c *moe.Case) *moe.Case { c.W1 = nil; return c }, "W1 (gate_up_proj) has 0 values, want 24"},
		{"short-DY", func(c *moe.Case) *moe.Case { c.DY = c.DY[1:]; return c }, "dY has 11 values"},
		{"missing-B2", func(c *moe.Case) *moe.Case { c.B2 = nil; return c }, "B2 (down bias) has 0 values, want 6"},
		{"bias-off", func(c *moe.Case) *moe.Case { c.Bias = false; return c }, "biases given but Bias is off"},
		{"nan", func(c *moe.Case) *moe.Case { c.W2[3] = math.NaN(); return c }, "W2 (down_proj)[3] = NaN: non-finite data needs NonFinite"},
		{"nan-allowed", func(c *moe.Case) *moe.Case { c.W2[3], c.NonFinite = math.NaN(), true; return c }, ""},
		{"inf-allowed", func(c *moe.Case) *moe.Case { c.X[0], c.NonFinite = math.Inf(-1), true; return c }, ""},
		{"not-representable", func(c *moe.Case) *moe.Case { c.B1[1] = 1.0 / 3; return c }, "B1 (gate_up bias)[1] = 0.3333333333333333 is not a bf16 value"},
		{"global-mismatch", func(c *moe.Case) *moe.Case { c.Global.Weights = make([]float64, 8); return c }, "differs from the map of the global routing"},
		{"global-bad", func(c *moe.Case) *moe.Case { c.Global.IDs = c.Global.IDs[:2]; return c }, "global routing:"},
	}
	for _, tt := range tests {
		c := tt.edit(good())
		err := c.Validate(moe.Limits{})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	c := good()
	d := c.Clone()
	d.X[0], d.Routing.IDs[0], d.Global.IDs[0] = 99, 0, 0
	if c.X[0] == 99 || c.Global.IDs[0] != g.IDs[0] {
		t.Error("Case.Clone shares storage")
	}
}

// TestGenerate checks that Generate is deterministic per seed, validates its input, and
// produces valid cases (every value representable) in every mode and dtype, with Integer
// data small integers.
func TestGenerate(t *testing.T) {
	for _, d := range moe.DTypes() {
		for _, m := range moe.DataModes() {
			cfg := goodConfig()
			cfg.DType = d
			r, err := moe.RandomRouting(cfg, 3)
			if err != nil {
				t.Fatal(err)
			}
			a, err := moe.Generate(cfg, r, 3, m)
			if err != nil {
				t.Fatalf("%s/%s: %v", d, m, err)
			}
			if err := a.Validate(moe.Limits{}); err != nil {
				t.Fatalf("%s/%s: generated case invalid: %v", d, m, err)
			}
			b, _ := moe.Generate(cfg, r, 3, m)
			for i := range a.W1 {
				if a.W1[i] != b.W1[i] {
					t.Fatalf("%s/%s: Generate is not deterministic", d, m)
				}
			}
			if m == moe.Integer {
				for _, v := range a.X {
					if v != math.Trunc(v) || math.Abs(v) > 2 {
						t.Fatalf("%s: Integer data holds %v", d, v)
					}
				}
			}
		}
	}
	bad := goodConfig()
	bad.K = 0
	if _, err := moe.Generate(bad, moe.Routing{}, 1, moe.Normal); err == nil {
		t.Error("Generate accepted an invalid config")
	}
	if _, err := moe.Generate(goodConfig(), moe.Routing{IDs: []int32{0}}, 1, moe.Normal); err == nil {
		t.Error("Generate accepted invalid routing")
	}
	if _, err := moe.RandomRouting(bad, 1); err == nil {
		t.Error("RandomRouting accepted an invalid config")
	}
}

// TestCaseValidateLong: on tensors long enough for Validate's scan to split over the cores,
// the refused value it names is the first one, in tensor order (X before W1), as a serial
// scan names it.
func TestCaseValidateLong(t *testing.T) {
	cfg := moe.Config{T: 64, H: 1024, I: 16, E: 2, K: 2, DType: moe.BF16, Act: moe.SwiGLU, Layout: moe.Standard}
	r, err := moe.RandomRouting(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(c *moe.Case)
		want string
	}{
		{"long/valid", func(c *moe.Case) {}, ""},
		{"long/first-of-three", func(c *moe.Case) { c.X[50000], c.X[9000], c.X[60001] = 1.0/3, 1.0/3, math.NaN() }, "X (hidden)[9000] = 0.3333333333333333 is not a bf16 value"},
		{"long/nan-first", func(c *moe.Case) { c.X[12345], c.X[40000] = math.Inf(1), 1.0/3 }, "X (hidden)[12345] = +Inf: non-finite data needs NonFinite"},
		{"long/last", func(c *moe.Case) { c.DY[len(c.DY)-1] = 1.0 / 3 }, "dY[65535] = 0.3333333333333333"},
		{"long/tensor-order", func(c *moe.Case) { c.X[65000], c.W1[0] = 1.0/3, 1.0/3 }, "X (hidden)[65000]"},
		{"long/nonfinite-allowed", func(c *moe.Case) { c.NonFinite, c.X[100], c.X[30000] = true, math.NaN(), 1.0/3 }, "X (hidden)[30000] = 0.3333333333333333 is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := moe.Generate(cfg, r, 5, moe.Normal)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(c)
			err = c.Validate(moe.Limits{})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestGenerateUnknownDataMode: a data mode outside the list is an error naming it, not a
// case drawn as Normal (it was accepted silently). Regression test.
func TestGenerateUnknownDataMode(t *testing.T) {
	cfg := goodConfig()
	r, err := moe.RandomRouting(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mode moe.DataMode
	}{{"data-mode/99", moe.DataMode(99)}, {"data-mode/one-past-subnormal", moe.Subnormal + 1}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := moe.Generate(cfg, r, 1, tc.mode)
			if err == nil || !strings.Contains(err.Error(), "unknown data mode "+tc.mode.String()) {
				t.Fatalf("Generate(%v) = %v, %v; want an error naming the mode", tc.mode, c != nil, err)
			}
		})
	}
}
