package sim

import (
	"context"
	"errors"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"math"
	"reflect"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// poisonCases are the cases the correct path must handle identically under every poison.
func poisonCases(t *testing.T) []*moe.Case {
	var cs []*moe.Case
	for seed := uint64(0); seed < 400; seed++ {
		cfg := randomConfig(seed)
		k := routingKind(seed % uint64(numRoutingKinds))
		m := moe.DataModes()[seed/7%uint64(len(moe.DataModes()))]
		cs = append(cs, makeCase(t, cfg, k, m, seed))
	}
	// Fixed shapes: one row tile and more, every dtype, activation, layout, bias.
	for i, cfg := range []moe.Config{
		{T: 40, H: 24, I: 20, E: 3, K: 2, DType: moe.BF16, Act: moe.GptOss, Layout: moe.Transposed, Bias: true},
		{T: 33, H: 16, I: 8, E: 4, K: 4, DType: moe.FP16, EP: moe.EP{World: 2, Rank: 1}},
		{T: 17, H: 9, I: 5, E: 1, K: 3, DType: moe.FP32, Bias: true},
	} {
		for k := routingKind(0); k < numRoutingKinds; k++ {
			cs = append(cs, makeCase(t, cfg, k, moe.Normal, uint64(1000+10*i)+uint64(k)))
		}
	}
	// Non-finite data: NaN and ±Inf in the hidden states.
	for seed := uint64(0); seed < 12; seed++ {
		c := makeCase(t, randomConfig(500+seed), routeRandom, moe.Normal, 500+seed)
		c.NonFinite = true
		c.X[0] = math.NaN()
		c.X[len(c.X)-1] = math.Inf(int(seed%2)*2 - 1)
		cs = append(cs, c)
	}
	return cs
}

func TestPoison(t *testing.T) {
	cases := poisonCases(t)
	ref := New(Options{})
	want := make([]*gpu.Result, len(cases))
	for i, c := range cases {
		want[i] = run(t, ref, c, gpu.RunOptions{})
	}
	for _, p := range gpu.Poisons() {
		t.Run("poison="+p.String(), func(t *testing.T) {
			b := New(Options{})
			// Two passes: under Stale the second pass recycles the first pass's buffers
			// (and consecutive cases of one config recycle each other's).
			for pass := 0; pass < 2; pass++ {
				for i, c := range cases {
					got := run(t, b, c, gpu.RunOptions{Poison: p, PoisonSeed: uint64(i + pass)})
					if d := bitDiff(got, want[i]); d != "" {
						t.Fatalf("case %d (%s): %s differs from the zero-poison result: %s", i, c.Config, p, d)
					}
				}
			}
		})
	}
	t.Run("stale-same-config", func(t *testing.T) {
		b := New(Options{})
		cfg := moe.Config{T: 20, H: 12, I: 6, E: 4, K: 3, DType: moe.BF16, Bias: true, EP: moe.EP{World: 2}}
		for seed := uint64(0); seed < 8; seed++ {
			c := makeCase(t, cfg, routingKind(seed%uint64(numRoutingKinds)), moe.Normal, seed)
			w := run(t, New(Options{}), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
			// A NaN run first leaves NaNs behind; a Huge run leaves huge values.
			run(t, b, c, gpu.RunOptions{Poison: []gpu.Poison{gpu.PoisonNaN, gpu.PoisonHuge}[seed%2]})
			got := run(t, b, c, gpu.RunOptions{Poison: gpu.PoisonStale})
			if d := bitDiff(got, w); d != "" {
				t.Fatalf("seed %d: stale result differs: %s", seed, d)
			}
		}
	})
}

func TestDeterministic(t *testing.T) {
	for seed := uint64(0); seed < 40; seed++ {
		c := makeCase(t, randomConfig(seed), routingKind(seed%uint64(numRoutingKinds)), moe.Normal, seed)
		t.Run(fmt.Sprintf("rerun/seed=%d", seed), func(t *testing.T) {
			b := New(Options{})
			orig := c.Clone()
			r1 := run(t, b, c, gpu.RunOptions{Poison: gpu.PoisonSignature})
			r2 := run(t, b, c, gpu.RunOptions{Poison: gpu.PoisonSignature})
			r3 := run(t, New(Options{}), c, gpu.RunOptions{Poison: gpu.PoisonNaN, Stages: true})
			if d := bitDiff(r1, r2); d != "" {
				t.Fatalf("two runs differ: %s", d)
			}
			if d := bitDiff(r1, r3); d != "" {
				t.Fatalf("two backends differ: %s", d)
			}
			if !reflect.DeepEqual(orig, c) {
				t.Fatal("Run modified the case")
			}
		})
	}
}

// TestStages checks the captured stages against the result and against docs/path.md's
// row contracts.
func TestStages(t *testing.T) {
	for seed := uint64(0); seed < 40; seed++ {
		c := makeCase(t, randomConfig(seed+77), routingKind(seed%uint64(numRoutingKinds)), moe.Normal, seed)
		t.Run(fmt.Sprintf("stages/seed=%d", seed), func(t *testing.T) {
			r := run(t, New(Options{}), c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true})
			if rn := run(t, New(Options{}), c, gpu.RunOptions{}); bitDiff(r, rn) != "" {
				t.Fatalf("stage capture changed the result: %s", bitDiff(r, rn))
			}
			checkStages(t, c, r)
		})
	}
}

func checkStages(t *testing.T, c *moe.Case, r *gpu.Result) {
	t.Helper()
	st := r.Stages
	if st == nil {
		t.Fatal("no stages")
	}
	p, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st.Perm, p.Perm) || !reflect.DeepEqual(st.Offsets, p.Offsets) {
		t.Fatalf("plan: perm %v offsets %v, want %v %v", st.Perm, st.Offsets, p.Perm, p.Offsets)
	}
	S, T, H, K, d := c.S(), c.T, c.H, c.K, c.DType
	for name, v := range map[string][]float32{"xs": st.Xs, "h1": st.H1, "act": st.Act, "h2": st.H2, "o": st.O,
		"d_o": st.DO, "d_h2": st.DH2, "d_act": st.DAct, "d_h1": st.DH1, "d_xs": st.DXs} {
		if len(v) == 0 || len(v)%S != 0 {
			t.Fatalf("stage %s has %d values for %d rows", name, len(v), S)
		}
		n := len(v) / S
		for i := p.Rows * n; i < len(v); i++ {
			if name == "d_act" || name == "d_o" {
				break // d_act's tail is never written; d_o is dY everywhere
			}
			if v[i] != 0 {
				t.Fatalf("stage %s: tail element %d = %v, want 0", name, i, v[i])
			}
		}
		for i, x := range v {
			if x != x && !c.NonFinite && !(name == "d_act" && i >= p.Rows*n) {
				t.Fatalf("stage %s[%d] is NaN", name, i)
			}
		}
	}
	for i := 0; i < S; i++ {
		tok := int(p.Perm[i]) / K
		for h := 0; h < H; h++ {
			if i < p.Rows && st.Xs[i*H+h] != float32(c.X[tok*H+h]) {
				t.Fatalf("xs[%d,%d] is not x[%d,%d]", i, h, tok, h)
			}
			if st.DO[i*H+h] != float32(c.DY[tok*H+h]) {
				t.Fatalf("d_o[%d,%d] is not dY[%d,%d]", i, h, tok, h)
			}
		}
		var acc float32
		for h := 0; h < H; h++ {
			acc += float32(st.DO[i*H+h] * st.H2[i*H+h])
		}
		if s := p.Perm[i]; math.Float32bits(r.DRW[s]) != math.Float32bits(d.RoundFloat32(acc)) {
			t.Fatalf("DRW[%d] = %v, want Σ d_o·h2 = %v", s, r.DRW[s], d.RoundFloat32(acc))
		}
	}
	for tok := 0; tok < T; tok++ {
		for h := 0; h < H; h++ {
			var y, dx float32
			for k := 0; k < K; k++ {
				i := int(p.Inv[tok*K+k])
				y += st.O[i*H+h]
				dx += st.DXs[i*H+h]
			}
			if math.Float32bits(r.Y[tok*H+h]) != math.Float32bits(d.RoundFloat32(y)) {
				t.Fatalf("Y[%d,%d] = %v, want the combine of o = %v", tok, h, r.Y[tok*H+h], d.RoundFloat32(y))
			}
			if math.Float32bits(r.DX[tok*H+h]) != math.Float32bits(d.RoundFloat32(dx)) {
				t.Fatalf("DX[%d,%d] = %v, want the scatter-add of d_xs = %v", tok, h, r.DX[tok*H+h], d.RoundFloat32(dx))
			}
		}
	}
}

func TestErrors(t *testing.T) {
	good := makeCase(t, moe.Config{T: 4, H: 8, I: 8, E: 4, K: 2, DType: moe.BF16}, routeLocal, moe.Normal, 1)
	mut := func(f func(c *moe.Case)) *moe.Case { c := good.Clone(); f(c); return c }
	global := makeCase(t, moe.Config{T: 4, H: 8, I: 8, E: 2, K: 2, DType: moe.BF16, EP: moe.EP{World: 2, Rank: 1}}, routeRandom, moe.Normal, 1)
	gmut := func(f func(c *moe.Case)) *moe.Case { c := global.Clone(); f(c); return c }
	for _, tc := range []struct {
		name   string
		c      *moe.Case
		opts   gpu.RunOptions
		faults fault.Set
	}{
		{"invalid/nil-case", nil, gpu.RunOptions{}, 0},
		{"invalid/short-x", mut(func(c *moe.Case) { c.X = c.X[1:] }), gpu.RunOptions{}, 0},
		{"invalid/nan-without-nonfinite", mut(func(c *moe.Case) { c.W1[3] = math.NaN() }), gpu.RunOptions{}, 0},
		{"invalid/inf-dy", mut(func(c *moe.Case) { c.DY[0] = math.Inf(1) }), gpu.RunOptions{}, 0},
		{"invalid/not-bf16", mut(func(c *moe.Case) { c.W2[5] = 1 + 1.0/1024 }), gpu.RunOptions{}, 0},
		{"invalid/subnormal-f64", mut(func(c *moe.Case) { c.X[2] = 1e-300 }), gpu.RunOptions{}, 0},
		{"invalid/id-out-of-range", mut(func(c *moe.Case) { c.Routing.IDs[0] = 9 }), gpu.RunOptions{}, 0},
		{"invalid/bias-without-flag", mut(func(c *moe.Case) { c.B1 = make([]float64, c.LenB1()) }), gpu.RunOptions{}, 0},
		{"invalid/global-mismatch", mut(func(c *moe.Case) {
			c.Global = &moe.GlobalRouting{IDs: make([]int64, c.S()), Weights: make([]float64, c.S())}
		}), gpu.RunOptions{}, 0},
		{"invalid/global-not-bf16", gmut(func(c *moe.Case) { c.W2[5] = 1 + 1.0/1024 }), gpu.RunOptions{}, 0},
		{"invalid/global-nan-without-nonfinite", gmut(func(c *moe.Case) { c.DY[1] = math.NaN() }), gpu.RunOptions{}, 0},
		{"invalid/global-routing-weight-changed", gmut(func(c *moe.Case) {
			for s, id := range c.Routing.IDs {
				if id != int32(c.E) { // a slot of this rank: its weight is the router's
					c.Global.Weights[s] += 0.5
					return
				}
			}
			t.Fatal("no slot on this rank")
		}), gpu.RunOptions{}, 0},
		{"invalid/too-big", mut(func(c *moe.Case) { c.H = 1 << 20 }), gpu.RunOptions{}, 0},
		{"fault/unknown-bit", good, gpu.RunOptions{}, 1 << 60},
		{"fault/zero-bit", good, gpu.RunOptions{}, 1},
		{"poison/unknown", good, gpu.RunOptions{Poison: 200}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(Options{}).RunFaults(context.Background(), tc.c, tc.opts, tc.faults)
			if err == nil || r != nil {
				t.Fatalf("got result %v, error %v; want an error", r != nil, err)
			}
			if _, ok := gpu.AsCaseError(err); ok {
				t.Fatalf("invalid input reported as a case error: %v", err)
			}
			t.Log(err)
		})
	}
	t.Run("limits/options", func(t *testing.T) {
		_, err := New(Options{Limits: moe.Limits{MaxH: 4}}).Run(context.Background(), good, gpu.RunOptions{})
		if err == nil {
			t.Fatal("H = 8 accepted under MaxH = 4")
		}
	})
	t.Run("ctx/canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := New(Options{}).Run(ctx, good, gpu.RunOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		b := New(Options{})
		run(t, b, good, gpu.RunOptions{})
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Run(context.Background(), good, gpu.RunOptions{}); err == nil {
			t.Fatal("Run after Close succeeded")
		}
	})
	t.Run("name", func(t *testing.T) {
		if n := New(Options{}).Name(); n != "sim" {
			t.Fatalf("Name() = %q", n)
		}
	})
}

// TestConcurrent shares one Backend between goroutines: Runs serialize on its pool, and
// each result equals a lone Run's.
func TestConcurrent(t *testing.T) {
	var cases []*moe.Case
	var want []*gpu.Result
	for seed := uint64(0); seed < 8; seed++ {
		c := makeCase(t, randomConfig(seed+900), routeRandom, moe.Normal, seed)
		cases = append(cases, c)
		want = append(want, run(t, New(Options{}), c, gpu.RunOptions{}))
	}
	b := New(Options{})
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for n := 0; n < 20; n++ {
				i := (g + n) % len(cases)
				r, err := b.Run(context.Background(), cases[i], gpu.RunOptions{Poison: gpu.Poisons()[n%len(gpu.Poisons())]})
				if err == nil {
					if d := bitDiff(r, want[i]); d != "" {
						err = fmt.Errorf("case %d: %s", i, d)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestStagesHandedOver: a Result's stages are the pool's buffers handed over, not copies, so
// (1) a later Run on the same Backend must not change them, and (2) a Stale run after a run
// with stages still reads the previous Run's values in memory the path leaves unwritten
// (DAct's tail rows), as it does when the buffers are recycled in place.
func TestStagesHandedOver(t *testing.T) {
	cfg := moe.Config{T: 20, H: 12, I: 6, E: 4, K: 3, DType: moe.BF16, EP: moe.EP{World: 2}}
	c := makeCase(t, cfg, 0, moe.Normal, 3)
	b := New(Options{})
	first := run(t, b, c, gpu.RunOptions{Poison: gpu.PoisonHuge, PoisonSeed: 5, Stages: true})
	keep := map[moe.Tensor][]float32{}
	for _, tn := range moe.StageTensors() {
		keep[tn] = append([]float32(nil), first.Stages.Tensor(tn)...)
	}
	stale := run(t, b, c, gpu.RunOptions{Poison: gpu.PoisonStale, Stages: true})
	run(t, b, makeCase(t, cfg, 1, moe.Normal, 4), gpu.RunOptions{Poison: gpu.PoisonNaN, Stages: true})
	for _, tn := range moe.StageTensors() {
		if d := floatDiff(first.Stages.Tensor(tn), keep[tn]); d != "" {
			t.Errorf("stage %s of the first Result changed under later Runs: %s", tn, d)
		}
	}
	R := int(first.Stages.Offsets[cfg.E-1])
	if R >= c.S() {
		t.Fatalf("the case has no tail rows (R = %d, S = %d)", R, c.S())
	}
	tail := func(r *gpu.Result) []float32 { return r.Stages.DAct[R*cfg.I:] }
	if d := floatDiff(tail(stale), tail(first)); d != "" {
		t.Errorf("Stale run: DAct's unwritten tail is not the previous Run's: %s", d)
	}
}

// floatDiff describes the first bitwise difference of two vectors ("" if none).
func floatDiff(a, b []float32) string {
	if len(a) != len(b) {
		return fmt.Sprintf("length %d vs %d", len(a), len(b))
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return fmt.Sprintf("element %d: %g vs %g", i, a[i], b[i])
		}
	}
	return ""
}
