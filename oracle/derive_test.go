package oracle

import (
	"context"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/internal/f64gemm"
	"github.com/moecheck/moecheck/internal/tokperm"
	"github.com/moecheck/moecheck/moe"
)

// cloneResult is a deep copy of r (outputs and stages).
func cloneResult(r *gpu.Result) *gpu.Result {
	cp := func(v []float32) []float32 { return append([]float32(nil), v...) }
	out := &gpu.Result{Y: cp(r.Y), DX: cp(r.DX), DW1: cp(r.DW1), DW2: cp(r.DW2), DB1: cp(r.DB1), DB2: cp(r.DB2), DRW: cp(r.DRW)}
	if r.Stages != nil {
		st := *r.Stages
		st.Xs, st.H1, st.Act, st.H2, st.O, st.DO = cp(st.Xs), cp(st.H1), cp(st.Act), cp(st.H2), cp(st.O), cp(st.DO)
		st.DH2, st.DAct, st.DH1, st.DXs = cp(st.DH2), cp(st.DAct), cp(st.DH1), cp(st.DXs)
		st.Perm, st.Offsets = slices.Clone(st.Perm), slices.Clone(st.Offsets)
		out.Stages = &st
	}
	return out
}

// derivePair is a case (from sampleCase's generator), its token permutation and the sim's
// runs of both under poison (the permuted run with another poison seed, as props runs it).
type derivePair struct {
	c, pc *moe.Case
	perm  []int
	a, b  *gpu.Result
}

func newDerivePair(t *testing.T, cfg moe.Config, seed uint64, poison gpu.Poison, kind dataKind) derivePair {
	t.Helper()
	c := casetest.CaseMode(t, cfg, seed, kind.mode)
	if kind.nonFinite {
		// a NaN and an Inf in x, an Inf in W1: values judged only where the reference is finite
		c.NonFinite = true
		c.X[1], c.X[len(c.X)/2] = math.NaN(), math.Inf(1)
		c.W1[len(c.W1)/3] = math.Inf(-1)
	}
	perm := moe.NewRand(seed*31 + 7).Perm(c.T)
	pc := tokperm.Permute(c, perm)
	b := sim.New(sim.Options{})
	a, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: poison, PoisonSeed: 1, Stages: true})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.Run(context.Background(), pc, gpu.RunOptions{Poison: poison, PoisonSeed: 5, Stages: true})
	if err != nil {
		t.Fatal(err)
	}
	return derivePair{c, pc, perm, a, pb}
}

// checkDerived judges pair.b (or res in its place) in full and derived from pair.a's
// judgement, requires the two verdicts to be the same, and returns the full verdict and how
// many comparisons the derivation took.
func checkDerived(t *testing.T, p derivePair, res *gpu.Result, ct contract.Contract) (*Verdict, int64) {
	t.Helper()
	va, j, err := new(Checker).CheckJudged(p.c, p.a, Options{Contract: ct})
	if err != nil {
		t.Fatal(err)
	}
	if !va.Pass || j == nil {
		t.Fatalf("the judged run does not pass: %s", va.Summary())
	}
	full, err := new(Checker).Check(p.pc, res, Options{Contract: ct})
	if err != nil {
		t.Fatal(err)
	}
	k := new(Checker)
	got, err := k.Check(p.pc, res, Options{Contract: ct, Derive: &Derivation{From: j, Perm: p.perm}})
	if err != nil {
		t.Fatal(err)
	}
	if dump(got) != dump(full) {
		t.Fatalf("derived verdict differs from the full check's:\nderived %s\nfull    %s", dump(got), dump(full))
	}
	return full, k.Derived()
}

// dataKind is how a pair's data is made: a generator mode, with non-finite values or not.
type dataKind struct {
	mode      moe.DataMode
	nonFinite bool
}

var dataKinds = []dataKind{{moe.Normal, false}, {moe.Subnormal, false}, {moe.Large, false}, {moe.Normal, true}}

// deriveConfigs are sampleConfigs and a few more (small ones, K = 1, gpt-oss without EP).
var deriveConfigs = append(append([]struct {
	name string
	cfg  moe.Config
	ct   contract.Contract
}(nil), sampleConfigs...), []struct {
	name string
	cfg  moe.Config
	ct   contract.Contract
}{
	{"bf16-k1-small", moe.Config{T: 5, H: 8, I: 4, E: 2, K: 1, DType: moe.BF16}, contract.Exact()},
	{"fp32-gptoss-torch", moe.Config{T: 40, H: 32, I: 16, E: 5, K: 2, DType: moe.FP32, Act: moe.GptOss}, contract.Torch()},
	{"fp16-bias-ep2-any", moe.Config{T: 48, H: 16, I: 8, E: 3, K: 3, DType: moe.FP16, Bias: true, EP: moe.EP{World: 2, Rank: 1}}, contract.Any()},
}...)

// TestDerivedVerdictEqualsFull: for correct runs of many cases (dtypes, activations, layouts,
// biases, expert parallelism, contracts, poison policies, data kinds with non-finite values)
// the derived verdict of the permuted run is the full check's, and the derivation is taken.
func TestDerivedVerdictEqualsFull(t *testing.T) {
	if !f64gemm.RowExact {
		t.Skip("the openblas build derives no verdict")
	}
	for _, tc := range deriveConfigs {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 3; seed++ {
				for _, ps := range []gpu.Poison{gpu.PoisonSignature, gpu.PoisonNaN, gpu.PoisonZeros, gpu.PoisonHuge} {
					for _, kind := range dataKinds {
						p := newDerivePair(t, tc.cfg, seed, ps, kind)
						v, hits := checkDerived(t, p, p.b, tc.ct)
						if !v.Pass {
							t.Fatalf("seed %d %v %v: the permuted run fails: %s", seed, ps, kind, v.Summary())
						}
						if hits < 13 {
							t.Fatalf("seed %d %v %v: %d comparisons derived, want all 13 stage-local ones", seed, ps, kind, hits)
						}
					}
				}
			}
		})
	}
}

// TestDerivedCatchesRowChange: one element changed in one row of one stage or output of the
// permuted run only (a fault that strikes the permuted run alone) gives the full check's
// verdict: a failure where the change is outside the bound, the same statistics where it is
// within. Without the row comparison the derived check would take the judged run's pass.
func TestDerivedCatchesRowChange(t *testing.T) {
	if !f64gemm.RowExact {
		t.Skip("the openblas build derives no verdict")
	}
	for _, tc := range deriveConfigs {
		t.Run(tc.name, func(t *testing.T) {
			p := newDerivePair(t, tc.cfg, 2, gpu.PoisonSignature, dataKinds[0])
			plan, err := p.pc.Plan()
			if err != nil {
				t.Fatal(err)
			}
			R := plan.Rows
			type target struct {
				name string
				get  func(r *gpu.Result) []float32
				n    int // row length
				row  int // the row changed
			}
			var targets []target
			for _, tn := range moe.StageTensors() {
				_, n := p.pc.Shape(tn)
				targets = append(targets, target{tn.String(), func(r *gpu.Result) []float32 { return r.Stages.Tensor(tn) }, n, R / 2})
			}
			targets = append(targets,
				target{"y", func(r *gpu.Result) []float32 { return r.Y }, p.pc.H, p.pc.T / 3},
				target{"dX", func(r *gpu.Result) []float32 { return r.DX }, p.pc.H, p.pc.T / 2},
				target{"d_rw", func(r *gpu.Result) []float32 { return r.DRW }, 1, int(plan.Perm[R/2])})
			for _, tg := range targets {
				for _, how := range []struct {
					name string
					f    func(x float32) float32
					fail bool
				}{
					{"far", func(x float32) float32 { return 3*x + 1 }, true},
					{"last-bit", func(x float32) float32 { return math.Float32frombits(math.Float32bits(x) ^ 1) }, false},
				} {
					res := cloneResult(p.b)
					v := tg.get(res)
					i := tg.row*tg.n + tg.n/2
					v[i] = how.f(v[i])
					full, _ := checkDerived(t, p, res, tc.ct)
					if how.fail && full.Pass {
						t.Fatalf("%s %s: the full check passes the changed run: the case does not test the row comparison", tg.name, how.name)
					}
				}
			}
		})
	}
}

// TestDerivedDActTail: d_act's tail rows, which the path leaves unwritten (their enclosure
// is unknown), may hold anything in the permuted run: the derivation is still taken and the
// verdict is the full check's.
func TestDerivedDActTail(t *testing.T) {
	if !f64gemm.RowExact {
		t.Skip("the openblas build derives no verdict")
	}
	tc := sampleConfigs[0] // EP 2: a sentinel tail
	p := newDerivePair(t, tc.cfg, 4, gpu.PoisonSignature, dataKinds[0])
	plan, _ := p.pc.Plan()
	if plan.Rows == p.pc.S() {
		t.Fatal("no sentinel tail: the case does not test it")
	}
	res := cloneResult(p.b)
	for i := plan.Rows * p.pc.I; i < len(res.Stages.DAct); i++ {
		res.Stages.DAct[i] = float32(i)
	}
	if _, hits := checkDerived(t, p, res, tc.ct); hits < 13 {
		t.Fatalf("%d comparisons derived, want 13", hits)
	}
}

// TestDerivedNotTaken: no comparison is taken from a run whose case is not the checked
// case's token permutation (a weight, a routing weight, an x row changed), whose stages were
// handed back, or that was judged under other freedoms; the verdict is the full check's. A
// judged run that fails, or a sampled check, gives no Judged; a perm that is not a
// permutation is an error.
func TestDerivedNotTaken(t *testing.T) {
	tc := sampleConfigs[2]
	p := newDerivePair(t, tc.cfg, 3, gpu.PoisonSignature, dataKinds[0])
	_, j, err := new(Checker).CheckJudged(p.c, p.a, Options{Contract: tc.ct})
	if err != nil || j == nil {
		t.Fatalf("CheckJudged: %v, %v", j, err)
	}
	for _, m := range []struct {
		name string
		f    func(c *moe.Case)
	}{
		{"weight", func(c *moe.Case) { c.W1[3] = 0.375 }},
		{"bias", func(c *moe.Case) { c.B2[1] = 0.5 }},
		{"routing-weight", func(c *moe.Case) { c.Routing.Weights[2] = 0.25 }},
		{"x-row", func(c *moe.Case) { c.X[c.H+1] = 2 }},
		{"dy-row", func(c *moe.Case) { c.DY[0] = -1 }},
		{"nonfinite", func(c *moe.Case) { c.NonFinite = true }},
	} {
		t.Run(m.name, func(t *testing.T) {
			q := p.pc.Clone()
			m.f(q)
			if tokenPermuted(p.c, q, p.perm) {
				t.Fatal("tokenPermuted accepts a changed case")
			}
			full, err := new(Checker).Check(q, p.b, Options{Contract: tc.ct})
			if err != nil {
				t.Fatal(err)
			}
			k := new(Checker)
			got, err := k.Check(q, p.b, Options{Contract: tc.ct, Derive: &Derivation{From: j, Perm: p.perm}})
			if err != nil {
				t.Fatal(err)
			}
			if dump(got) != dump(full) || k.Derived() != 0 {
				t.Fatalf("%d comparisons derived; verdict %s, full %s", k.Derived(), got.Summary(), full.Summary())
			}
		})
	}
	if !tokenPermuted(p.c, p.pc, p.perm) {
		t.Fatal("tokenPermuted rejects the permuted case")
	}
	t.Run("recycled", func(t *testing.T) {
		a := cloneResult(p.a)
		_, j, _ := new(Checker).CheckJudged(p.c, a, Options{Contract: tc.ct})
		a.Stages = nil // as sim.Backend.Recycle leaves it
		k := new(Checker)
		if _, err := k.Check(p.pc, p.b, Options{Contract: tc.ct, Derive: &Derivation{From: j, Perm: p.perm}}); err != nil {
			t.Fatal(err)
		}
		if k.Derived() != 0 {
			t.Fatal("derived from a run whose stages were handed back")
		}
	})
	t.Run("other-freedoms", func(t *testing.T) {
		k := new(Checker)
		if _, err := k.Check(p.pc, p.b, Options{Contract: contract.Exact(), Derive: &Derivation{From: j, Perm: p.perm}}); err != nil {
			t.Fatal(err)
		}
		if k.Derived() != 0 {
			t.Fatal("derived under other freedoms")
		}
	})
	t.Run("no-judged", func(t *testing.T) {
		bad := cloneResult(p.a)
		bad.Stages.H1[0] += 1
		if v, j, err := new(Checker).CheckJudged(p.c, bad, Options{Contract: tc.ct}); err != nil || v.Pass || j != nil {
			t.Fatalf("a failing run: pass %v, judged %v, err %v", v.Pass, j != nil, err)
		}
		if _, j, err := new(Checker).CheckJudged(p.c, p.a, Options{Contract: tc.ct, Sample: Sample{Fraction: 0.5, Seed: 1}}); err != nil || j != nil {
			t.Fatalf("a sampled check: judged %v, err %v", j != nil, err)
		}
		if _, j, err := new(Checker).CheckJudged(p.c, p.a, Options{Contract: tc.ct, SkipStages: true}); err != nil || j != nil {
			t.Fatalf("a check end to end: judged %v, err %v", j != nil, err)
		}
	})
	t.Run("bad-perm", func(t *testing.T) {
		for _, perm := range [][]int{p.perm[1:], append([]int{p.perm[1]}, p.perm[1:]...), append(slices.Clone(p.perm[1:]), p.c.T)} {
			if _, err := new(Checker).Check(p.pc, p.b, Options{Contract: tc.ct, Derive: &Derivation{From: j, Perm: perm}}); err == nil {
				t.Fatalf("perm %v accepted", perm)
			}
		}
	})
}

// TestTokenPermutedFields: tokenPermuted compares every field of moe.Case; a field added to
// the case must be added there (and here).
func TestTokenPermutedFields(t *testing.T) {
	var names []string
	ty := reflect.TypeFor[moe.Case]()
	for i := range ty.NumField() {
		names = append(names, ty.Field(i).Name)
	}
	want := []string{"Config", "Routing", "X", "W1", "B1", "W2", "B2", "DY", "Global", "NonFinite"}
	if !slices.Equal(names, want) {
		t.Fatalf("moe.Case has fields %v, tokenPermuted compares %v", names, want)
	}
	if n := reflect.TypeFor[moe.Routing]().NumField(); n != 2 {
		t.Fatalf("moe.Routing has %d fields, tokenPermuted compares IDs and Weights", n)
	}
	if n := reflect.TypeFor[moe.GlobalRouting]().NumField(); n != 3 {
		t.Fatalf("moe.GlobalRouting has %d fields, tokenPermuted compares IDs, Weights and Options", n)
	}
}
