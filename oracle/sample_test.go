package oracle

import (
	"fmt"
	"math"
	"math/big"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
)

// sampleCase builds a case and its sim result (signature poison: every buffer the path
// does not write holds a NaN naming it).
func sampleCase(t *testing.T, cfg moe.Config, seed uint64) (*moe.Case, *gpu.Result) {
	t.Helper()
	c := casetest.Case(t, cfg, seed)
	return c, casetest.SimRun(t, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true})
}

// dump is a verdict as text (NaN statistics compare equal, unlike reflect.DeepEqual).
func dump(v *Verdict) string {
	w := *v
	w.Sample = nil
	s := fmt.Sprintf("%+v", w)
	if v.Sample != nil {
		s += fmt.Sprintf(" sample %+v", *v.Sample)
	}
	return s
}

// withStage returns a copy of res whose stage tn is q.
func withStage(t *testing.T, res *gpu.Result, tn moe.Tensor, q []float32) *gpu.Result {
	t.Helper()
	out := *res
	st := *res.Stages
	out.Stages = &st
	switch tn {
	case moe.TensorH1:
		st.H1 = q
	case moe.TensorH2:
		st.H2 = q
	case moe.TensorAct:
		st.Act = q
	case moe.TensorDXs:
		st.DXs = q
	default:
		t.Fatalf("stage %s not handled", tn)
	}
	return &out
}

// TestMissProbability: C(n−m, s)/C(n, s) against the binomial coefficients in exact
// arithmetic, at most (1 − s/n)^m, and missM the smallest m whose bound is ≤ δ.
func TestMissProbability(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n, s, m int
	}{
		{"one-of-ten", 10, 1, 1}, {"half", 10, 5, 1}, {"two-marked", 10, 3, 2}, {"all-but-one-drawn", 10, 9, 1},
		{"marked-exceed-undrawn", 10, 6, 5}, {"none-drawn", 10, 0, 3}, {"none-marked", 10, 4, 0},
		{"large", 4000, 200, 30}, {"large-many", 4000, 40, 600}, {"everything", 7, 7, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MissProbability(tc.n, tc.s, tc.m)
			want := 1.0
			if tc.m > 0 && tc.s > 0 {
				num := new(big.Int).Binomial(int64(tc.n-tc.m), int64(tc.s))
				if tc.n-tc.m < tc.s {
					num.SetInt64(0)
				}
				den := new(big.Int).Binomial(int64(tc.n), int64(tc.s))
				want, _ = new(big.Rat).SetFrac(num, den).Float64()
			}
			if math.Abs(got-want) > 1e-12*math.Max(want, 1e-300) && math.Abs(got-want) > 1e-300 {
				t.Fatalf("MissProbability(%d, %d, %d) = %g, want %g", tc.n, tc.s, tc.m, got, want)
			}
			if b := math.Pow(1-float64(tc.s)/float64(tc.n), float64(tc.m)); got > b*(1+1e-12) {
				t.Fatalf("MissProbability(%d, %d, %d) = %g above the bound (1 − s/n)^m = %g", tc.n, tc.s, tc.m, got, b)
			}
		})
	}
	for _, f := range []float64{0.01, 0.02, 0.05, 0.1, 0.5, 0.999} {
		m := missM(f, SampleDelta)
		if math.Pow(1-f, float64(m)) > SampleDelta || m > 1 && math.Pow(1-f, float64(m-1)) <= SampleDelta {
			t.Fatalf("missM(%g) = %d: (1−f)^m = %g, (1−f)^(m−1) = %g", f, m, math.Pow(1-f, float64(m)), math.Pow(1-f, float64(m-1)))
		}
	}
	if missM(1, SampleDelta) != 0 {
		t.Fatal("missM(1) must be 0: everything judged")
	}
}

// sampleConfigs are cases with sizable expert groups and a sentinel tail, over dtypes,
// activations, layouts, biases and contracts.
var sampleConfigs = []struct {
	name string
	cfg  moe.Config
	ct   contract.Contract
}{
	{"bf16-swiglu-ep2", moe.Config{T: 96, H: 24, I: 16, E: 4, K: 4, DType: moe.BF16, EP: moe.EP{World: 2, Rank: 1}}, contract.Exact()},
	{"fp16-swiglu-torch", moe.Config{T: 64, H: 16, I: 24, E: 3, K: 2, DType: moe.FP16}, contract.Torch()},
	{"fp32-gptoss-bias-transposed-ep2-any", moe.Config{T: 64, H: 24, I: 16, E: 4, K: 3, DType: moe.FP32, Act: moe.GptOss, Layout: moe.Transposed, Bias: true, EP: moe.EP{World: 2, Rank: 0}}, contract.Any()},
	{"bf16-gptoss-bias-ep4", moe.Config{T: 128, H: 16, I: 8, E: 8, K: 4, DType: moe.BF16, Act: moe.GptOss, Bias: true, EP: moe.EP{World: 4, Rank: 3}}, contract.Exact()},
}

// TestSampleFractionOneIsFull: Fraction 1 (and 0) is the full check, verdict for verdict,
// on passing and failing results.
func TestSampleFractionOneIsFull(t *testing.T) {
	for _, tc := range sampleConfigs {
		t.Run(tc.name, func(t *testing.T) {
			c, res := sampleCase(t, tc.cfg, 3)
			bad := append([]float32(nil), res.Stages.H1...)
			bad[len(bad)/7] += 1
			for _, r := range []*gpu.Result{res, withStage(t, res, moe.TensorH1, bad)} {
				full, err := Check(c, r, Options{Contract: tc.ct})
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range []float64{0, 1} {
					v, err := Check(c, r, Options{Contract: tc.ct, Sample: Sample{Fraction: f, Seed: 9}})
					if err != nil {
						t.Fatal(err)
					}
					if dump(v) != dump(full) {
						t.Fatalf("fraction %g: verdict %s, the full check's %s", f, v.Summary(), full.Summary())
					}
				}
			}
		})
	}
}

// TestSampleNoFalseAlarm: correct sim results pass the sampled check for many cases, seeds
// and fractions, and the verdict says it was sampled (judged fewer elements than N).
func TestSampleNoFalseAlarm(t *testing.T) {
	for _, tc := range sampleConfigs {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 6; seed++ {
				c, res := sampleCase(t, tc.cfg, seed)
				for _, f := range []float64{0.02, 0.2, 0.6} {
					v, err := Check(c, res, Options{Contract: tc.ct, Sample: Sample{Fraction: f, Seed: seed * 7}})
					if err != nil {
						t.Fatal(err)
					}
					if !v.Pass {
						t.Fatalf("seed %d fraction %g: sampled check failed a correct result: %s", seed, f, v.Summary())
					}
					if v.Sample == nil || len(v.Sample.Tensors) == 0 {
						t.Fatalf("seed %d fraction %g: no sample report", seed, f)
					}
					less := false
					for _, s := range v.Sample.Tensors {
						if s.JudgedElements > s.Elements || s.Judged > s.Units || s.Forced > s.Judged {
							t.Fatalf("%s: inconsistent coverage %+v", s.Name(), s)
						}
						less = less || s.JudgedElements < s.Elements
					}
					if f <= 0.2 && !less {
						t.Fatalf("seed %d fraction %g: every element judged: the case does not test sampling", seed, f)
					}
				}
			}
		})
	}
}

// TestSampleReproducible: the same seed judges the same units (identical verdicts, with a
// fresh or a reused Checker); other seeds draw others.
func TestSampleReproducible(t *testing.T) {
	tc := sampleConfigs[0]
	c, res := sampleCase(t, tc.cfg, 2)
	o := Options{Contract: tc.ct, Sample: Sample{Fraction: 0.1, Seed: 5}}
	a, err := Check(c, res, o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := new(Checker).Check(c, res, o)
	if err != nil {
		t.Fatal(err)
	}
	if dump(a) != dump(b) {
		t.Fatalf("the same seed gave different verdicts:\n%s\n%s", dump(a), dump(b))
	}
	// a fault in one token of y (not token 0 or T−1, which are always judged): caught by the
	// seeds that draw it, the same way every time, and not by every seed
	y := append([]float32(nil), res.Y...)
	y[(c.T/2)*c.H+1] += 8
	faulty := *res
	faulty.Y = y
	k := new(Checker)
	caught := map[bool]int{}
	for seed := uint64(0); seed < 40; seed++ {
		o := Options{Contract: tc.ct, Sample: Sample{Fraction: 0.1, Seed: seed}}
		a, err := k.Check(c, &faulty, o)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Check(c, &faulty, o)
		if err != nil {
			t.Fatal(err)
		}
		if dump(a) != dump(b) {
			t.Fatalf("seed %d: two checks gave different verdicts", seed)
		}
		caught[!a.Pass]++
	}
	if caught[true] == 0 || caught[false] == 0 {
		t.Fatalf("caught by %d of 40 seeds: the seed does not change the draw", caught[true])
	}
}

// TestSampleSameBound: a judged element is judged against the full check's enclosure: a
// perturbation of a group's first row (always judged) fails both checks with the same
// failure (count, location, value, center and radius).
func TestSampleSameBound(t *testing.T) {
	for _, tc := range sampleConfigs {
		t.Run(tc.name, func(t *testing.T) {
			c, res := sampleCase(t, tc.cfg, 4)
			p, _ := c.Plan()
			e := 0
			for p.End(e) <= p.Begin(e) {
				e++
			}
			for _, tn := range []moe.Tensor{moe.TensorH1, moe.TensorDXs} {
				q := append([]float32(nil), res.Stages.Tensor(tn)...)
				n := len(q) / c.S()
				k := p.Begin(e)*n + n/2
				q[k] = q[k]*1.5 + 0.5
				r := withStage(t, res, tn, q)
				full, err := Check(c, r, Options{Contract: tc.ct})
				if err != nil {
					t.Fatal(err)
				}
				v, err := Check(c, r, Options{Contract: tc.ct, Sample: Sample{Fraction: 0.05, Seed: 1}})
				if err != nil {
					t.Fatal(err)
				}
				if full.Pass || v.Pass {
					t.Fatalf("%s: full pass %v, sampled pass %v: the perturbation must fail both", tn, full.Pass, v.Pass)
				}
				if fmt.Sprintf("%+v", full.Failures) != fmt.Sprintf("%+v", v.Failures) {
					t.Fatalf("%s: full %v, sampled %v", tn, full.Failures, v.Failures)
				}
			}
		})
	}
}

// TestSampleMissRate: a fault confined to m tokens of y (nothing downstream of y: only its
// stage-local check can see it), outside the always-judged tokens, is caught exactly when a
// faulty token is drawn: over many seeds the miss rate matches MissProbability(N', s, m)
// with N' and s from the verdict's own report (one stratum: N' = Units − Forced, s =
// Judged − Forced), within 4.5 binomial standard deviations, and the reported bound is at
// least that. A NaN in any token is caught by every seed (non-finite units are always
// judged).
func TestSampleMissRate(t *testing.T) {
	cfg := moe.Config{T: 200, H: 16, I: 8, E: 2, K: 2, DType: moe.BF16}
	c, res := sampleCase(t, cfg, 8)
	p, _ := c.Plan()
	forced := map[int]bool{0: true, c.T - 1: true}
	for e := 0; e < c.E; e++ {
		b, end := p.Begin(e), p.End(e)
		for _, r := range groupEdges(b, end) {
			if r >= b && r < end {
				forced[int(p.Perm[r])/c.K] = true
			}
		}
	}
	var free []int
	for tok := 0; tok < c.T; tok++ {
		if !forced[tok] {
			free = append(free, tok)
		}
	}
	const f = 0.1
	for _, tc := range []struct {
		name string
		toks []int
		nan  bool
	}{
		{"one-token", free[10:11], false},
		{"three-tokens", []int{free[3], free[50], free[90]}, false},
		{"nan-token", free[40:41], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := append([]float32(nil), res.Y...)
			for _, tok := range tc.toks {
				if tc.nan {
					y[tok*c.H+3] = float32(math.NaN())
				} else {
					y[tok*c.H+3] += 8
				}
			}
			faulty := *res
			faulty.Y = y
			const seeds = 800
			missed := 0
			var st SampleStat
			k := new(Checker)
			for seed := uint64(0); seed < seeds; seed++ {
				v, err := k.Check(c, &faulty, Options{Sample: Sample{Fraction: f, Seed: seed}})
				if err != nil {
					t.Fatal(err)
				}
				if v.Pass {
					missed++
				}
				for _, x := range v.Sample.Tensors {
					if x.Tensor == moe.TensorY {
						st = x
					}
				}
			}
			if tc.nan {
				if missed != 0 {
					t.Fatalf("a NaN token escaped %d of %d seeds: non-finite units must always be judged", missed, seeds)
				}
				return
			}
			N, s := st.Units-st.Forced, st.Judged-st.Forced
			if N != len(free) || s != int(math.Ceil(f*float64(N))) {
				t.Fatalf("report: %d free units, %d drawn; want %d and ⌈%g·%d⌉", N, s, len(free), f, len(free))
			}
			want := MissProbability(N, s, len(tc.toks))
			sd := math.Sqrt(want * (1 - want) / seeds)
			got := float64(missed) / seeds
			if math.Abs(got-want) > 4.5*sd {
				t.Fatalf("missed %d of %d seeds (%.4f), hypergeometric %.4f ± %.4f", missed, seeds, got, want, sd)
			}
			if bound := st.MissBound(len(tc.toks)); bound < want {
				t.Fatalf("reported bound %.4f below the exact miss probability %.4f", bound, want)
			}
			t.Logf("%s: missed %d/%d = %.4f, exact %.4f, reported bound %.4f (f_min %.4f)", tc.name, missed, seeds, got, want, st.MissBound(len(tc.toks)), st.MinFrac)
		})
	}
}

// TestSampleNonFiniteWgradAlwaysJudged: a NaN anywhere in a weight gradient, in either
// layout, fails the sampled check for every seed (rows holding non-finite values are forced).
func TestSampleNonFiniteWgradAlwaysJudged(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  moe.Config
	}{
		{"standard", moe.Config{T: 64, H: 24, I: 16, E: 2, K: 2, DType: moe.BF16}},
		{"transposed", moe.Config{T: 64, H: 24, I: 16, E: 2, K: 2, DType: moe.BF16, Layout: moe.Transposed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, res := sampleCase(t, tc.cfg, 6)
			for _, w := range []struct {
				name moe.Tensor
				idx  int
			}{{moe.TensorDW1, c.W1Index(1, 13, 7)}, {moe.TensorDW2, c.W2Index(0, 11, 5)}} {
				bad := *res
				if w.name == moe.TensorDW1 {
					bad.DW1 = append([]float32(nil), res.DW1...)
					bad.DW1[w.idx] = float32(math.Inf(1))
				} else {
					bad.DW2 = append([]float32(nil), res.DW2...)
					bad.DW2[w.idx] = float32(math.NaN())
				}
				for seed := uint64(0); seed < 20; seed++ {
					v, err := Check(c, &bad, Options{Sample: Sample{Fraction: 0.01, Seed: seed}})
					if err != nil {
						t.Fatal(err)
					}
					if v.Pass {
						t.Fatalf("%s: a non-finite element escaped seed %d", w.name, seed)
					}
				}
			}
		})
	}
}
