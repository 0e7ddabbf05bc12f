package props_test

import (
	"context"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

func torchLikeSupport() props.Support {
	return props.Support{
		DTypes:   []moe.DType{moe.BF16, moe.FP32},
		Variants: []props.Variant{{Act: moe.SwiGLU, Layout: moe.Standard}, {Act: moe.GptOss, Layout: moe.Transposed, Bias: true}},
		AlignH:   map[moe.DType]int{moe.BF16: 8, moe.FP32: 4},
		AlignI:   map[moe.DType]int{moe.BF16: 8, moe.FP32: 4},
		Poisons:  []gpu.Poison{gpu.PoisonZeros, gpu.PoisonNaN, gpu.PoisonPosInf},
	}
}

func inside(t *testing.T, s props.Support, sp props.Spec) {
	t.Helper()
	c, err := sp.Build()
	if err != nil {
		t.Fatalf("%s: %v", sp, err)
	}
	ok := false
	for _, v := range s.Variants {
		ok = ok || v == props.Variant{Act: c.Act, Layout: c.Layout, Bias: c.Bias}
	}
	if !ok || c.Global != nil || c.H%s.AlignH[c.DType] != 0 || c.I%s.AlignI[c.DType] != 0 || c.DType == moe.FP16 {
		t.Fatalf("fitted spec %s builds %s (global %v): outside the support", sp, c.Config, c.Global != nil)
	}
	p := gpu.Poison(sp.Poison)
	if p != gpu.PoisonZeros && p != gpu.PoisonNaN && p != gpu.PoisonPosInf {
		t.Fatalf("fitted spec %s: poison %s outside the support", sp, p)
	}
}

// Every generated spec fits inside the support, fitting is idempotent, and a spec already
// inside is left alone.
func TestFitFuncKeepsSpecsInside(t *testing.T) {
	s := torchLikeSupport()
	fit := props.FitFunc(s)
	seen := map[moe.DType]bool{}
	for i := 0; i < 300; i++ {
		sp, _ := props.SpecAt(3, i, props.GenOptions{})
		f, err := fit(sp)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		inside(t, s, f)
		if g, _ := fit(f); g != f {
			t.Fatalf("case %d: fit is not idempotent: %s then %s", i, f, g)
		}
		seen[moe.DType(f.DType)] = true
	}
	if !seen[moe.BF16] || !seen[moe.FP32] {
		t.Errorf("fitted dtypes %v: want both supported dtypes drawn", seen)
	}
}

// unsupportedBackend refuses cases with more than 3 tokens, like a worker's capabilities.
type unsupportedBackend struct{ gpu.Backend }

func (u unsupportedBackend) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	if c.T > 3 {
		return nil, &gpu.UnsupportedError{Reason: "T > 3"}
	}
	return u.Backend.Run(ctx, c, o)
}

// A case outside the backend's capabilities is counted, not checked, and does not end the
// run (before: Run returned the backend's error and stopped).
func TestRunCountsUnsupportedCases(t *testing.T) {
	env := &props.Env{Backend: unsupportedBackend{sim.New(sim.Options{})}}
	var reported int
	rep, err := props.Run(context.Background(), props.RunConfig{Env: env, Seed: 5, Cases: 40, Properties: []props.Property{matchesProp(t)},
		OnCase: func(cr props.CaseResult) {
			if cr.Unsupported != "" {
				reported++
			}
		}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Unsupported == 0 || rep.Cases == 0 || rep.Cases+rep.Unsupported != 40 || reported != rep.Unsupported {
		t.Fatalf("cases %d, unsupported %d (reported %d): want both > 0, summing to 40", rep.Cases, rep.Unsupported, reported)
	}
	if len(rep.Failures) != 0 {
		t.Fatalf("failures: %+v", rep.Failures[0].Failed)
	}
}

// Shrinking a failure stays inside the support: every candidate is fitted first.
func TestShrinkStaysInside(t *testing.T) {
	s := torchLikeSupport()
	env := &props.Env{Backend: sim.New(sim.Options{}), Faults: fault.Of(fault.MaskAfterWeight), Fit: props.FitFunc(s)}
	rep, err := props.Run(context.Background(), props.RunConfig{Env: env, Seed: 1, Cases: 200})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) == 0 || rep.Failures[0].Shrunk == nil || rep.Failures[0].Shrunk.Outcome == nil {
		t.Fatalf("mask-after-weight not caught and shrunk in 200 cases: %+v", rep)
	}
	sh := rep.Failures[0].Shrunk
	inside(t, s, sh.Spec)
	if sh.Steps == 0 {
		t.Errorf("no shrink step taken from %s", rep.Failures[0].Spec)
	}
}

func matchesProp(t *testing.T) props.Property {
	t.Helper()
	p, err := props.ByName("matches")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// NoSentinels: every fitted spec builds a case without a sentinel id (EP world 1, no
// sentinel routing mode), and fitting is idempotent; without it, sentinels occur.
func TestFitFuncNoSentinels(t *testing.T) {
	for _, no := range []bool{false, true} {
		s := torchLikeSupport()
		s.NoSentinels = no
		fit := props.FitFunc(s)
		withSentinel := 0
		for i := 0; i < 300; i++ {
			sp, _ := props.SpecAt(11, i, props.GenOptions{})
			f, err := fit(sp)
			if err != nil {
				t.Fatalf("nosentinels=%v case %d: %v", no, i, err)
			}
			if g, _ := fit(f); g != f {
				t.Fatalf("nosentinels=%v case %d: fit is not idempotent: %s then %s", no, i, f, g)
			}
			c, err := f.Build()
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for _, id := range c.Routing.IDs {
				if int(id) == c.E {
					withSentinel++
					break
				}
			}
		}
		if no && withSentinel != 0 {
			t.Errorf("nosentinels: %d of 300 fitted cases hold a sentinel id", withSentinel)
		}
		if !no && withSentinel < 30 {
			t.Errorf("without nosentinels only %d of 300 cases hold a sentinel id: the test shows nothing", withSentinel)
		}
	}
}
