package casetest_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
)

// fatalTB records the first Fatal/Fatalf message and ends the goroutine there, as testing's
// does; the embedded TB (nil) is never called.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fatalTB) Fatal(args ...any) { f.msg = fmt.Sprint(args...); runtime.Goexit() }

// fatalOf runs do with a fatalTB on its own goroutine and returns the message it failed with
// ("" when it did not fail).
func fatalOf(do func(tb testing.TB)) string {
	f := &fatalTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		do(f)
	}()
	<-done
	return f.msg
}

// TestCase: each helper is its two moe calls with the seeds and data mode it names, bit for
// bit; the variants differ where their seeds or mode do.
func TestCase(t *testing.T) {
	cfg := moe.Config{T: 6, H: 8, I: 4, E: 3, K: 2, DType: moe.BF16, EP: moe.EP{World: 2, Rank: 1}, Bias: true}
	want := func(routeSeed, dataSeed uint64, mode moe.DataMode) *moe.Case {
		r, err := moe.RandomRouting(cfg, routeSeed)
		if err != nil {
			t.Fatal(err)
		}
		c, err := moe.Generate(cfg, r, dataSeed, mode)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		got  *moe.Case
		want *moe.Case
		same bool
	}{
		{"case/seed-3", casetest.Case(t, cfg, 3), want(3, 3, moe.Normal), true},
		{"case/not-seed-4", casetest.Case(t, cfg, 3), want(4, 4, moe.Normal), false},
		{"mode/large", casetest.CaseMode(t, cfg, 5, moe.Large), want(5, 5, moe.Large), true},
		{"mode/not-normal", casetest.CaseMode(t, cfg, 5, moe.Large), want(5, 5, moe.Normal), false},
		{"seeds/3-4", casetest.CaseSeeds(t, cfg, 3, 4), want(3, 4, moe.Normal), true},
		{"seeds/not-3-3", casetest.CaseSeeds(t, cfg, 3, 4), want(3, 3, moe.Normal), false},
		{"seeds/not-4-4", casetest.CaseSeeds(t, cfg, 3, 4), want(4, 4, moe.Normal), false},
	} {
		if got := moe.EqualCases(tc.got, tc.want); got != tc.same {
			t.Errorf("%s: EqualCases %v, want %v", tc.name, got, tc.same)
		}
	}
}

// TestSimRun: SimRun is a fresh sim backend's run under the options given (poison and
// stages included), bit for bit.
func TestSimRun(t *testing.T) {
	c := casetest.Case(t, moe.Config{T: 5, H: 8, I: 4, E: 4, K: 2, DType: moe.FP16, EP: moe.EP{World: 2}}, 7)
	for _, tc := range []struct {
		name string
		opts gpu.RunOptions
	}{
		{"run/nan-stages", gpu.RunOptions{Poison: gpu.PoisonNaN, Stages: true}},
		{"run/signature-stages", gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true}},
		{"run/huge-no-stages", gpu.RunOptions{Poison: gpu.PoisonHuge, PoisonSeed: 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := casetest.SimRun(t, c, tc.opts)
			want, err := sim.New(sim.Options{}).Run(context.Background(), c, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if (got.Stages != nil) != tc.opts.Stages {
				t.Fatalf("stages returned %v, asked %v", got.Stages != nil, tc.opts.Stages)
			}
			ts := moe.Outputs()
			if tc.opts.Stages {
				ts = append(ts, moe.StageTensors()...)
			}
			for _, tt := range ts {
				// the same float32 bits, NaN payloads (the poison's signatures) included
				if !slices.EqualFunc(got.Tensor(tt), want.Tensor(tt), func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) }) {
					t.Errorf("%s differs from a direct sim run", tt)
				}
			}
		})
	}
}

// TestFailures: a step that fails fails the test with a message naming the step, the config
// or options, the seed and the cause. (Generate cannot fail once RandomRouting has accepted
// the config: both validate the same config, and the routing is RandomRouting's own.)
func TestFailures(t *testing.T) {
	bad := moe.Config{T: 4, H: 8, I: 4, E: 3, K: 0, DType: moe.BF16} // K < 1
	good := moe.Config{T: 4, H: 8, I: 4, E: 3, K: 2, DType: moe.BF16}
	for _, tc := range []struct {
		name string
		do   func(tb testing.TB)
		want []string // "" for no failure
	}{
		{"case/bad-config", func(tb testing.TB) { casetest.Case(tb, bad, 3) }, []string{"random routing", "K=0", "seed 3", "K (top-k) = 0"}},
		{"mode/bad-config", func(tb testing.TB) { casetest.CaseMode(tb, bad, 2, moe.Large) }, []string{"random routing", "seed 2"}},
		{"seeds/bad-config", func(tb testing.TB) { casetest.CaseSeeds(tb, bad, 6, 7) }, []string{"random routing", "seed 6"}},
		{"run/nil-case", func(tb testing.TB) { casetest.SimRun(tb, nil, gpu.RunOptions{Poison: gpu.PoisonNaN}) }, []string{"sim run", "Poison:"}},
		{"case/good", func(tb testing.TB) { casetest.Case(tb, good, 3) }, nil},
	} {
		msg := fatalOf(tc.do)
		if tc.want == nil {
			if msg != "" {
				t.Errorf("%s: failed: %s", tc.name, msg)
			}
			continue
		}
		if msg == "" {
			t.Errorf("%s: did not fail", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: message %q does not name %q", tc.name, msg, w)
			}
		}
	}
}

// TestSplit: Split's layer has E·W experts and no EP; rank r has cfg's E experts, EP rank
// r of W, the layer's X and dY, and the layer's weights of its experts; edit sees the global
// routing before anything is built from it (the layer's routing keeps an edited weight).
func TestSplit(t *testing.T) {
	cfg := moe.Config{T: 8, H: 4, I: 3, E: 2, K: 2, DType: moe.BF16}
	const W = 3
	for _, tc := range []struct {
		name string
		edit bool
	}{{"split/plain", false}, {"split/edited", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var edit func(g *moe.GlobalRouting)
			edited := false
			if tc.edit {
				edit = func(g *moe.GlobalRouting) { g.Weights[0], edited = 0.5, true }
			}
			u, ranks := casetest.Split(t, cfg, W, 3, 4, moe.Normal, edit)
			if u.E != cfg.E*W || u.EP.WorldSize() != 1 || len(ranks) != W {
				t.Fatalf("layer E=%d world=%d, %d ranks; want E=%d, world 1, %d ranks", u.E, u.EP.WorldSize(), len(ranks), cfg.E*W, W)
			}
			if tc.edit && (!edited || u.Routing.Weights[0] != 0.5) {
				t.Fatalf("edit ran %v; the layer's first weight %v, want 0.5", edited, u.Routing.Weights[0])
			}
			n := len(u.W1) / W
			for r, rc := range ranks {
				if rc.E != cfg.E || rc.EP.Rank != r || rc.EP.WorldSize() != W {
					t.Fatalf("rank %d: E=%d EP=%+v", r, rc.E, rc.EP)
				}
				if !slices.Equal(rc.W1, u.W1[r*n:(r+1)*n]) || !slices.Equal(rc.X, u.X) || !slices.Equal(rc.DY, u.DY) {
					t.Fatalf("rank %d: weights or inputs are not the layer's", r)
				}
			}
		})
	}
}
