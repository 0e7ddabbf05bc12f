package oracle

import (
	"fmt"
	"math"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/internal/epsplit"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// splitOf builds an unsplit layer (E·W experts) and its W rank cases (E experts each), as
// props.SplitCases does: one global routing, the unsplit weights sliced per rank. For one
// seed in three the ranks keep the router's weights on their sentinel slots
// (KeepSentinelWeights), some of them negative: tail rows with different weights.
func splitOf(t *testing.T, cfg moe.Config, W int, mode moe.DataMode, seed uint64) (*moe.Case, []*moe.Case) {
	t.Helper()
	var edit func(g *moe.GlobalRouting)
	if seed%3 == 2 {
		edit = func(g *moe.GlobalRouting) {
			g.Options.KeepSentinelWeights = true
			for s := range g.Weights { // o's tail elements then are −0 and +0
				if s%3 == 0 {
					g.Weights[s] = -g.Weights[s]
				}
			}
		}
	}
	u, ranks := casetest.Split(t, cfg, W, seed, seed*31+7, mode, edit)
	for _, rc := range ranks {
		if err := rc.Validate(moe.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	return u, ranks
}

// dirtyArena returns an arena whose first slab of n elements holds NaNs, as a reused
// arena holds an earlier case's values: what a derivation reads without writing shows.
func dirtyArena(n int) *arena {
	a := &arena{}
	v := a.getDirty(n)
	for i := range v {
		v[i] = math.NaN()
	}
	a.reset()
	return a
}

// sameOutputs reports the first output in which two enclosures differ (bitwise, centers and
// radii), or "".
func sameOutputs(a, b *Enclosure) string {
	for _, x := range []struct {
		name string
		a, b ivec
	}{
		{"Y", a.Y, b.Y}, {"DX", a.DX, b.DX}, {"DW1", a.DW1, b.DW1},
		{"DB1", a.DB1, b.DB1}, {"DW2", a.DW2, b.DW2}, {"DB2", a.DB2, b.DB2}, {"DRW", a.DRW, b.DRW},
	} {
		if !sameBits(x.a, x.b) {
			return x.name
		}
	}
	return ""
}

// TestRankEnclosureSameAsFull: the enclosure of each rank of an expert-parallel split derived
// from the unsplit layer's (rankEnclosure) is bitwise the one encloseIn derives for the rank
// on its own — every output, centers and radii — over dtypes, activations,
// layouts, biases, data modes, world sizes, contracts and which gradients are derived.
func TestRankEnclosureSameAsFull(t *testing.T) {
	contracts := []contract.Contract{contract.Exact(), contract.Torch(), contract.Any()}
	if ct, err := contract.ByName("torch+tf32+reduced-precision-reduction"); err == nil {
		contracts = append(contracts, ct)
	} else {
		t.Fatal(err)
	}
	n := 0
	for seed := uint64(1); seed <= 24; seed++ {
		cfg, W, mode := casetest.SplitShape(seed)
		u, ranks := splitOf(t, cfg, W, mode, seed)
		if seed%4 == 1 { // non-finite inputs: unknown elements reach the tails too
			for _, c := range append([]*moe.Case{u}, ranks...) {
				c.NonFinite = true
				c.DY[0], c.X[len(c.X)-1] = math.NaN(), math.Inf(1)
			}
		}
		for ci, ct := range contracts {
			for _, need := range []wgradNeed{{}, {b: true}, {w: true, b: true}} {
				name := fmt.Sprintf("seed=%d/%s/W=%d/contract=%d/need=%v", seed, cfg, W, ci, need)
				uen, err := encloseNeed(u, false, ct, &arena{}, &workspace{}, need, par.New(0, 0), nil)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for r, rc := range ranks {
					up, _ := u.Plan()
					rp, _ := rc.Plan()
					if _, ok := epsplit.Rows(u, rc, up, rp); !ok {
						t.Fatalf("%s: rank %d not recognised as a rank of the split", name, r)
					}
					got, err := rankEnclosure(uen, u, rc, ct, dirtyArena(1<<16), &workspace{}, need)
					if err != nil {
						t.Fatalf("%s: rank %d: %v", name, r, err)
					}
					want, err := encloseNeed(rc, false, ct, &arena{}, &workspace{}, need, par.New(0, 0), nil)
					if err != nil {
						t.Fatalf("%s: rank %d: %v", name, r, err)
					}
					if d := sameOutputs(got, want); d != "" {
						t.Fatalf("%s: rank %d: %s differs from the rank's own enclosure", name, r, d)
					}
					n++
				}
			}
		}
	}
	t.Logf("%d rank enclosures compared", n)
}

// TestRankEnclosureAsRunSplitSays: the enclosure of each rank case derived as the split-sum
// comparison derives it — only the rows mapped where reference.RunSplit found the case a
// rank of the split (SplitResult.Split) — is bitwise the rank's own, with one rank case
// changed in an input its rows read (RunSplit then says it is not a rank of the split; were
// the rows copied all the same, its enclosure would be the unsplit layer's rows).
func TestRankEnclosureAsRunSplitSays(t *testing.T) {
	cfg := moe.Config{T: 9, H: 6, I: 4, E: 2, K: 3, DType: moe.BF16, Bias: true}
	for _, tc := range []struct {
		name   string
		change func(c *moe.Case)
	}{
		{"none", func(*moe.Case) {}},
		{"x", func(c *moe.Case) { c.X[4] = c.DType.Round(c.X[4] + 1) }},
		{"w1", func(c *moe.Case) {
			for i := range c.W1 {
				c.W1[i] = c.DType.Round(2 * c.W1[i])
			}
		}},
		{"routing-weight", func(c *moe.Case) {
			for s, id := range c.Routing.IDs {
				if id != int32(c.E) {
					c.Routing.Weights[s] = c.DType.Round(c.Routing.Weights[s] / 3)
				}
			}
		}},
	} {
		t.Run("change="+tc.name, func(t *testing.T) {
			u, ranks := splitOf(t, cfg, 3, moe.Normal, 4)
			ranks[1] = ranks[1].Clone()
			tc.change(ranks[1])
			refs, err := reference.RunSplit(u, ranks, reference.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if refs.Split[1] != (tc.name == "none") || !refs.Split[0] || !refs.Split[2] {
				t.Fatalf("RunSplit says %v", refs.Split)
			}
			for _, ct := range []contract.Contract{contract.Exact(), contract.Torch()} {
				need := wgradNeed{w: true, b: true}
				uen, err := encloseNeed(u, false, ct, &arena{}, &workspace{}, need, par.New(0, 0), nil)
				if err != nil {
					t.Fatal(err)
				}
				for r, rc := range ranks {
					got, err := rankEnclosureValid(uen, u, rc, ct, &arena{}, &workspace{}, need, refs.Split[r])
					if err != nil {
						t.Fatal(err)
					}
					want, err := encloseNeed(rc, false, ct, &arena{}, &workspace{}, need, par.New(0, 0), nil)
					if err != nil {
						t.Fatal(err)
					}
					if d := sameOutputs(got, want); d != "" {
						t.Fatalf("contract %s: rank %d: %s differs from the rank's own enclosure", ct, r, d)
					}
				}
			}
		})
	}
}

// TestRankRowsRefusesOtherCases: a rank case that differs from the unsplit layer's rank in
// any input its rows read is not derived from the unsplit layer (rankEnclosure then derives
// it in full, so its bound is its own).
func TestRankRowsRefusesOtherCases(t *testing.T) {
	cfg := moe.Config{T: 6, H: 5, I: 3, E: 2, K: 2, DType: moe.BF16, Bias: true}
	u, ranks := splitOf(t, cfg, 3, moe.Normal, 5)
	up, _ := u.Plan()
	for _, tc := range []struct {
		name   string
		change func(c *moe.Case)
	}{
		{"x", func(c *moe.Case) { c.X[3] += 1 }},
		{"dy", func(c *moe.Case) { c.DY[0] = -c.DY[0] - 1 }},
		{"w1", func(c *moe.Case) { c.W1[len(c.W1)-1] += 1 }},
		{"w2", func(c *moe.Case) { c.W2[0] += 1 }},
		{"b1", func(c *moe.Case) { c.B1[1] += 1 }},
		{"b2", func(c *moe.Case) { c.B2[0] += 1 }},
		{"routing-weight", func(c *moe.Case) {
			for s, id := range c.Routing.IDs {
				if id != int32(c.E) {
					c.Routing.Weights[s] /= 2
					return
				}
			}
		}},
		{"dtype", func(c *moe.Case) { c.DType = moe.FP16 }},
		{"rank", func(c *moe.Case) { c.EP.Rank = (c.EP.Rank + 1) % 3 }},
	} {
		t.Run("change="+tc.name, func(t *testing.T) {
			rc := ranks[1]
			c := *rc
			c.X, c.DY = append([]float64(nil), rc.X...), append([]float64(nil), rc.DY...)
			c.W1, c.W2 = append([]float64(nil), rc.W1...), append([]float64(nil), rc.W2...)
			c.B1, c.B2 = append([]float64(nil), rc.B1...), append([]float64(nil), rc.B2...)
			c.Routing.Weights = append([]float64(nil), rc.Routing.Weights...)
			rp, _ := rc.Plan()
			if _, ok := epsplit.Rows(u, &c, up, rp); !ok {
				t.Fatal("the unchanged copy is not recognised")
			}
			tc.change(&c)
			if _, ok := epsplit.Rows(u, &c, up, rp); ok {
				t.Fatal("a changed rank case is derived from the unsplit layer")
			}
		})
	}
}

// TestWeightZeroRowsSameAsWeightRows: weightZeroRows, which derives the element of a +0 h2
// row once per routing weight, gives weightRows' enclosure over a +0 h2 bitwise (centers,
// radii, the sign of zero) — for weights positive, negative, ±0 and repeated, every dtype
// and contract. (arith.mul makes +0 times any finite weight exactly +0, so every valid
// weight gives the same element today; the memo is keyed on the weight all the same.)
func TestWeightZeroRowsSameAsWeightRows(t *testing.T) {
	for _, d := range []moe.DType{moe.BF16, moe.FP16, moe.FP32} {
		for ci, ct := range []contract.Contract{contract.Exact(), contract.Torch(), contract.Any()} {
			t.Run(fmt.Sprintf("dtype=%s/contract=%d", d, ci), func(t *testing.T) {
				cfg := moe.Config{T: 16, H: 3, I: 2, E: 2, K: 2, DType: d}
				r, err := moe.RandomRouting(cfg, 3)
				if err != nil {
					t.Fatal(err)
				}
				ws := []float64{0.5, 0.5, -0.25, math.Copysign(0, -1), 0, 1, -1, -1, 0.75}
				for s := range r.Weights {
					r.Weights[s] = ws[s%len(ws)]
				}
				c, err := moe.Generate(cfg, r, 3, moe.Normal)
				if err != nil {
					t.Fatal(err)
				}
				p, _ := c.Plan()
				en := newEnclIn(c, p, nil, &workspace{}, nil)
				en.ct = ct
				S, H := c.S(), c.H
				want, got := newIvec(S*H), newIvec(S*H)
				en.weightRows(ivsrc(newIvec(S*H)), want, 0, S, 0)
				en.weightZeroRows(got, 0, S)
				for k := range got.c {
					if math.Float64bits(got.c[k]) != math.Float64bits(want.c[k]) || math.Float64bits(got.r[k]) != math.Float64bits(want.r[k]) {
						t.Fatalf("element %d: (%v, %v), want (%v, %v)", k, got.c[k], got.r[k], want.c[k], want.r[k])
					}
				}
			})
		}
	}
}

// TestActivationRowsZeroMemo: activationRows, which derives the element of exact +0 gate and
// up once per call, gives each element's own actForwardC bitwise — for rows of +0, −0, zero
// centers with a radius and ordinary values, every activation, dtype and contract.
func TestActivationRowsZeroMemo(t *testing.T) {
	vals := []rv{{0, 0}, {math.Copysign(0, -1), 0}, {0, 1e-3}, {0.5, 0}, {-3, 0.25}, {40, 0}, {0, math.NaN()}}
	for _, act := range []moe.Activation{moe.SwiGLU, moe.GptOss} {
		for _, d := range []moe.DType{moe.BF16, moe.FP16, moe.FP32} {
			for ci, ct := range []contract.Contract{contract.Exact(), contract.Torch(), contract.Any()} {
				t.Run(fmt.Sprintf("act=%s/dtype=%s/contract=%d", act, d, ci), func(t *testing.T) {
					cfg := moe.Config{T: 8, H: 2, I: 3, E: 1, K: 2, Act: act, DType: d}
					c := casetest.Case(t, cfg, 1)
					p, _ := c.Plan()
					en := newEnclIn(c, p, nil, &workspace{}, nil)
					en.ct = ct
					S, I := c.S(), c.I
					h1 := newIvec(S * 2 * I)
					for k := range h1.c { // zero rows first and last, the values in between
						x := vals[0]
						if i := k / (2 * I); i > 1 && i < S-2 {
							x = vals[(k*7+i)%len(vals)]
						}
						h1.c[k], h1.r[k] = x.v, x.e
					}
					got := newIvec(S * I)
					en.activationRows(ivsrc(h1), got, 0, S, 0)
					for i := 0; i < S; i++ {
						for j := 0; j < I; j++ {
							g, u := ivsrc(h1).at(i*2*I+c.GateCol(j)), ivsrc(h1).at(i*2*I+c.UpCol(j))
							a := en.arith().actForwardC(act, d, ct.Activation, g, u)
							wc, wr := en.round(a.v, a.e)
							k := i*I + j
							if math.Float64bits(got.c[k]) != math.Float64bits(wc) || math.Float64bits(got.r[k]) != math.Float64bits(wr) {
								t.Fatalf("row %d col %d: (%v, %v), want (%v, %v)", i, j, got.c[k], got.r[k], wc, wr)
							}
						}
					}
				})
			}
		}
	}
}

// TestFinite: finite(x) is !(IsNaN(x) || IsInf(x, 0)) for the special values and random bit
// patterns (rv.unknown, ivec.known, roundInto and finishMath test finiteness with it).
func TestFinite(t *testing.T) {
	xs := []float64{0, math.Copysign(0, -1), 1, -1, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
		math.Inf(1), math.Inf(-1), math.NaN(), math.Float64frombits(0xfff8000000000001), 0x1p-1074, 0x1p1023}
	rng := moe.NewRand(3)
	for i := 0; i < 100000; i++ {
		xs = append(xs, math.Float64frombits(rng.Uint64()))
	}
	for _, x := range xs {
		if got, want := finite(x), !(math.IsNaN(x) || math.IsInf(x, 0)); got != want {
			t.Fatalf("finite(%v = %#x) = %v, want %v", x, math.Float64bits(x), got, want)
		}
	}
}

// rankEnclosure is rankEnclosureValid(…, false) after validating rc: the rank enclosure of any
// case, which the tests compare with its own enclosure.
func rankEnclosure(u *Enclosure, uc, rc *moe.Case, ct contract.Contract, ar *arena, ws *workspace, need wgradNeed) (*Enclosure, error) {
	if err := rc.Validate(moe.Limits{}); err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	return rankEnclosureValid(u, uc, rc, ct, ar, ws, need, false)
}
