package oracle

import (
	"fmt"
	"math"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/moe"
)

// TestTailFastBitwise: the stage checks' shortcut for spans of the sentinel tail
// (compareSpansTail) gives bitwise the verdict of deriving those spans element by element
// (Checker.fullTails), serial and split, for a passing result and for results whose tail
// rows hold what a faulty path could leave there: a nonzero value, −0, a NaN, a poison
// signature, nonzero h1 and h2 tails (act's and o's tails are then derived), a d_o tail that
// is not dY, in every stage; and the shortcut is taken.
func TestTailFastBitwise(t *testing.T) {
	serial := par.Split{Workers: 1, MinWork: par.MinWork}
	split := par.Split{Workers: 4, MinWork: 1}
	sig := math.Float32frombits(0x7FC00000 | 5<<16) // a signature-like NaN
	for _, tc := range []struct {
		name string
		cfg  moe.Config
		ct   contract.Contract
	}{
		{"bf16-swiglu-ep4-exact", moe.Config{T: 24, H: 40, I: 24, E: 8, K: 3, DType: moe.BF16, EP: moe.EP{World: 4, Rank: 1}}, contract.Exact()},
		{"fp16-ep2-torch", moe.Config{T: 20, H: 16, I: 24, E: 4, K: 2, DType: moe.FP16, EP: moe.EP{World: 2, Rank: 1}}, contract.Torch()},
		{"fp32-gptoss-bias-transposed-ep4-any", moe.Config{T: 16, H: 24, I: 16, E: 8, K: 2, DType: moe.FP32, Act: moe.GptOss, Layout: moe.Transposed, Bias: true, EP: moe.EP{World: 4, Rank: 3}}, contract.Any()},
		{"bf16-gptoss-bias-ep2-torch", moe.Config{T: 16, H: 24, I: 16, E: 6, K: 4, DType: moe.BF16, Act: moe.GptOss, Bias: true, EP: moe.EP{World: 2, Rank: 0}}, contract.Torch()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := casetest.Case(t, tc.cfg, 11)
			p, err := c.Plan()
			if err != nil {
				t.Fatal(err)
			}
			R, S := p.Rows, c.S()
			if R >= S {
				t.Fatalf("no sentinel tail (R %d, S %d): the case does not test the shortcut", R, S)
			}
			res := casetest.SimRun(t, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true})
			// tailed returns a copy of res whose stage t has v at tail element k (of row
			// length n), for every stage listed.
			tailed := func(k int, v float32, ts ...moe.Tensor) *gpu.Result {
				out := *res
				st := *res.Stages
				out.Stages = &st
				for _, tn := range ts {
					p := st.Tensor(tn)
					q := append([]float32(nil), p...)
					n := len(q) / S
					q[R*n+k%((S-R)*n)] = v
					switch tn {
					case moe.TensorXs:
						st.Xs = q
					case moe.TensorH1:
						st.H1 = q
					case moe.TensorAct:
						st.Act = q
					case moe.TensorH2:
						st.H2 = q
					case moe.TensorO:
						st.O = q
					case moe.TensorDO:
						st.DO = q
					case moe.TensorDH2:
						st.DH2 = q
					case moe.TensorDAct:
						st.DAct = q
					case moe.TensorDH1:
						st.DH1 = q
					case moe.TensorDXs:
						st.DXs = q
					default:
						t.Fatalf("stage %s not handled", tn)
					}
				}
				return &out
			}
			all := []moe.Tensor{moe.TensorXs, moe.TensorAct, moe.TensorO, moe.TensorDH2, moe.TensorDAct, moe.TensorDH1, moe.TensorDXs}
			for _, v := range []struct {
				name string
				r    *gpu.Result
				pass bool
			}{
				{"pass", res, true},
				{"fail/nonzero-every-stage", tailed(5, 0.5, all...), false},
				{"pass/negative-zero", tailed(7, float32(math.Copysign(0, -1)), moe.TensorXs, moe.TensorDXs, moe.TensorDH1), true},
				{"fail/nan", tailed(3, float32(math.NaN()), all...), false},
				{"fail/signature", tailed(9, sig, all...), false},
				{"fail/h1-tail", tailed(2, 1, moe.TensorH1), false},
				{"fail/h2-tail", tailed(4, 2, moe.TensorH2), false},
				{"fail/h1-h2-act-o-tails", tailed(1, -3, moe.TensorH1, moe.TensorH2, moe.TensorAct, moe.TensorO), false},
				{"fail/do-tail-inf", tailed(6, float32(math.Inf(-1)), moe.TensorDO), false},
				{"fail/do-tail-value", tailed(10, 0.25, moe.TensorDO), false},
				{"fail/do-tail-nan-h2-tail", tailed(8, float32(math.NaN()), moe.TensorDO, moe.TensorH2), false},
			} {
				var want string
				for _, sp := range []par.Split{serial, split} {
					for _, full := range []bool{true, false} {
						k := &Checker{sp: sp, fullTails: full}
						got, err := k.Check(c, v.r, Options{Contract: tc.ct})
						if err != nil {
							t.Fatal(err)
						}
						if got.Pass != v.pass {
							t.Fatalf("%s (workers %d, full tails %v): pass=%v, want %v: %s", v.name, sp.Workers, full, got.Pass, v.pass, got.Summary())
						}
						s := fmt.Sprintf("%+v", *got)
						if want == "" {
							want = s
						} else if s != want {
							t.Errorf("%s (workers %d, full tails %v): verdict differs from the full derivation's:\nfull  %s\nthis  %s", v.name, sp.Workers, full, want, s)
						}
						if hits := k.tailHits.Load(); full && hits != 0 || !full && hits == 0 {
							t.Errorf("%s (workers %d, full tails %v): %d tail spans shortcut", v.name, sp.Workers, full, hits)
						}
					}
				}
			}
		})
	}
}

// TestLocalSpansBitwise: the stage-local y and dX compared token block by token block give
// bitwise the verdict of the comparison against their whole enclosure (Checker.wholeLocal),
// serial and split, passing and failing (NaN, a poison signature, values out of bounds in
// both), under contracts with and without a free combine and scatter order.
func TestLocalSpansBitwise(t *testing.T) {
	serial := par.Split{Workers: 1, MinWork: par.MinWork}
	split := par.Split{Workers: 4, MinWork: 1}
	for _, tc := range []struct {
		name string
		cfg  moe.Config
		ct   contract.Contract
	}{
		{"bf16-swiglu-exact", moe.Config{T: 40, H: 40, I: 24, E: 6, K: 3, DType: moe.BF16}, contract.Exact()},
		{"fp16-ep-torch", moe.Config{T: 36, H: 16, I: 24, E: 4, K: 2, DType: moe.FP16, EP: moe.EP{World: 2, Rank: 1}}, contract.Torch()},
		{"fp32-gptoss-bias-any", moe.Config{T: 30, H: 24, I: 16, E: 5, K: 2, DType: moe.FP32, Act: moe.GptOss, Bias: true}, contract.Any()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := casetest.Case(t, tc.cfg, 5)
			res := casetest.SimRun(t, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true})
			bad := corrupt(res)
			for _, v := range []struct {
				name string
				r    *gpu.Result
				pass bool
			}{{"pass", res, true}, {"fail", bad, false}} {
				var want string
				for _, sp := range []par.Split{serial, split} {
					for _, whole := range []bool{true, false} {
						k := &Checker{sp: sp, wholeLocal: whole}
						got, err := k.Check(c, v.r, Options{Contract: tc.ct})
						if err != nil {
							t.Fatal(err)
						}
						if got.Pass != v.pass {
							t.Fatalf("%s (workers %d, whole %v): pass=%v, want %v: %s", v.name, sp.Workers, whole, got.Pass, v.pass, got.Summary())
						}
						s := fmt.Sprintf("%+v", *got)
						if want == "" {
							want = s
						} else if s != want {
							t.Errorf("%s (workers %d, whole %v): verdict differs from the whole comparison's:\nwhole %s\nthis  %s", v.name, sp.Workers, whole, want, s)
						}
					}
				}
			}
		})
	}
}

// TestSignaturesLongScan: an output of sigScanMin values or more is first scanned over the
// cores for a quiet NaN; a signature anywhere (the last element included) is still reported
// at its index, and a quiet NaN that is no signature, or none, reports nothing.
func TestSignaturesLongScan(t *testing.T) {
	cfg := moe.Config{T: sigScanMin / 32, H: 32, I: 8, E: 2, K: 1, DType: moe.BF16}
	c := casetest.Case(t, cfg, 3)
	p, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	sig := math.Float32frombits(0x7FC00000 | 5<<16)
	n := cfg.LenX()
	for _, tc := range []struct {
		name  string
		at    int
		v     float32
		fails int
	}{
		{"clean/none", -1, 0, 0},
		{"signature/last", n - 1, sig, 1},
		{"signature/first", 0, sig, 1},
		{"quiet-nan/not-a-signature", n / 2, math.Float32frombits(0x7FC00001), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]float32, n)
			for i := range got {
				got[i] = 0.5
			}
			if tc.at >= 0 {
				got[tc.at] = tc.v
			}
			for _, sp := range []par.Split{{Workers: 1, MinWork: par.MinWork}, {Workers: 4, MinWork: 1}} {
				ck := &checker{c: c, p: p, v: &Verdict{}, sp: sp}
				ck.signatures(moe.TensorY, got)
				if len(ck.v.Failures) != tc.fails {
					t.Fatalf("workers %d: %d failures, want %d: %+v", sp.Workers, len(ck.v.Failures), tc.fails, ck.v.Failures)
				}
				if tc.fails > 0 && (ck.v.Failures[0].Check != CheckSignature || ck.v.Failures[0].Worst.Index != tc.at) {
					t.Fatalf("workers %d: failure %+v, want a signature at %d", sp.Workers, ck.v.Failures[0], tc.at)
				}
			}
		})
	}
}

// BenchmarkTransposeExact: transposeExact on one expert's W1 and W2 of a Qwen3-30B-A3B layer
// (2I×H = 1536×2048, H×I = 2048×768), as the dgrad stages call it per expert; ns/element.
func BenchmarkTransposeExact(b *testing.B) {
	for _, sh := range [][2]int{{1536, 2048}, {2048, 768}} {
		m, k := sh[0], sh[1]
		b.Run(fmt.Sprintf("m=%d/k=%d", m, k), func(b *testing.B) {
			x := make([]float64, m*k)
			for i := range x {
				x[i] = float64(i)
			}
			en := &encl{ar: &arena{}}
			for b.Loop() {
				en.ar.reset()
				en.transposeExact(x, m, k)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(m*k), "ns/element")
		})
	}
}
