package oracle

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/moe"
)

// TestSplitBitwise: the enclosure and the check split over goroutines (every loop forced to
// split: ranges of one index, four workers) give bitwise the enclosures and the verdicts of
// the serial computation, for passing results and for results with failures in several
// tensors (the failures' order, counts and worst elements included).
func TestSplitBitwise(t *testing.T) {
	serial := par.Split{Workers: 1, MinWork: par.MinWork}
	split := par.Split{Workers: 4, MinWork: 1}
	for _, tc := range []struct {
		name string
		cfg  moe.Config
		ct   contract.Contract
	}{
		{"bf16-swiglu-exact", moe.Config{T: 24, H: 40, I: 24, E: 6, K: 3, DType: moe.BF16}, contract.Exact()},
		{"fp16-ep-torch", moe.Config{T: 20, H: 16, I: 24, E: 4, K: 2, DType: moe.FP16, EP: moe.EP{World: 2, Rank: 1}}, contract.Torch()},
		{"fp32-gptoss-bias-transposed-any", moe.Config{T: 16, H: 24, I: 16, E: 5, K: 2, DType: moe.FP32, Act: moe.GptOss, Layout: moe.Transposed, Bias: true}, contract.Any()},
		{"bf16-gptoss-bias-torch", moe.Config{T: 16, H: 24, I: 16, E: 5, K: 4, DType: moe.BF16, Act: moe.GptOss, Bias: true}, contract.Torch()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := casetest.Case(t, tc.cfg, 7)
			a, err := encloseSplit(c, false, tc.ct, serial)
			if err != nil {
				t.Fatal(err)
			}
			b, err := encloseSplit(c, false, tc.ct, split)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range []struct {
				name string
				a, b ivec
			}{{"Xs", a.Xs, b.Xs}, {"H1", a.H1, b.H1}, {"Act", a.Act, b.Act}, {"H2", a.H2, b.H2}, {"O", a.O, b.O}, {"Y", a.Y, b.Y},
				{"DO", a.DO, b.DO}, {"DRWSorted", a.DRWSorted, b.DRWSorted}, {"DH2", a.DH2, b.DH2}, {"DAct", a.DAct, b.DAct},
				{"DW2", a.DW2, b.DW2}, {"DB2", a.DB2, b.DB2}, {"DH1", a.DH1, b.DH1}, {"DXs", a.DXs, b.DXs},
				{"DW1", a.DW1, b.DW1}, {"DB1", a.DB1, b.DB1}, {"DX", a.DX, b.DX}, {"DRW", a.DRW, b.DRW}} {
				if !sameBits(x.a, x.b) {
					t.Errorf("%s: the split enclosure differs from the serial one", x.name)
				}
			}
			res := casetest.SimRun(t, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true})
			bad := corrupt(res)
			for _, v := range []struct {
				name string
				r    *gpu.Result
				o    Options
			}{{"pass", res, Options{}}, {"pass-end-to-end", res, Options{SkipStages: true}},
				{"fail", bad, Options{}}, {"fail-end-to-end", bad, Options{SkipStages: true}}} {
				v.o.Contract = tc.ct
				k1, k4 := &Checker{sp: serial}, &Checker{sp: split}
				v1, err := k1.Check(c, v.r, v.o)
				if err != nil {
					t.Fatal(err)
				}
				v4, err := k4.Check(c, v.r, v.o)
				if err != nil {
					t.Fatal(err)
				}
				if want := v.name[:4] == "pass"; v1.Pass != want {
					t.Fatalf("%s: serial verdict pass=%v, want %v: %s", v.name, v1.Pass, want, v1.Summary())
				}
				if s1, s4 := fmt.Sprintf("%+v", *v1), fmt.Sprintf("%+v", *v4); s1 != s4 {
					t.Errorf("%s: split verdict differs from the serial one:\nserial %s\nsplit  %s", v.name, s1, s4)
				}
			}
		})
	}
}

// corrupt returns a copy of res with failures in several tensors: elements nudged out of
// their bounds in a stage and in outputs, a NaN, a poison signature, repeated so that the
// aggregation must keep the first of equally bad elements.
func corrupt(res *gpu.Result) *gpu.Result {
	out := *res
	st := *res.Stages
	out.Stages = &st
	dup := func(v []float32) []float32 { return append([]float32(nil), v...) }
	st.H1 = dup(st.H1)
	for i := 3; i < len(st.H1); i += 97 {
		st.H1[i] = st.H1[i]*1.5 + 1
	}
	out.DW1 = dup(out.DW1)
	for i := 1; i < len(out.DW1); i += 31 {
		out.DW1[i] += 4
	}
	out.Y = dup(out.Y)
	out.Y[0] = float32(math.NaN())
	out.Y[len(out.Y)-1] += 8
	out.DX = dup(out.DX)
	out.DX[len(out.DX)/2] = math.Float32frombits(0x7FC00000 | 5<<16) // a signature-like NaN
	return &out
}

// sameBits reports whether two enclosures are bitwise equal.
func sameBits(a, b ivec) bool {
	if len(a.c) != len(b.c) || len(a.r) != len(b.r) {
		return false
	}
	for i := range a.c {
		if math.Float64bits(a.c[i]) != math.Float64bits(b.c[i]) || math.Float64bits(a.r[i]) != math.Float64bits(b.r[i]) {
			return false
		}
	}
	return true
}

// TestCheckStops: a check whose Stop channel is closed returns ErrStopped, stage-local and
// end to end, serial and split, instead of a verdict built from an unfinished enclosure.
func TestCheckStops(t *testing.T) {
	cfg := moe.Config{T: 24, H: 40, I: 24, E: 6, K: 3, DType: moe.BF16}
	c := casetest.Case(t, cfg, 3)
	res := casetest.SimRun(t, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true})
	stop := make(chan struct{})
	close(stop)
	for _, tc := range []struct {
		name string
		sp   par.Split
		skip bool
	}{{"stages-serial", par.Split{Workers: 1, MinWork: par.MinWork}, false}, {"stages-split", par.Split{Workers: 4, MinWork: 1}, false},
		{"end-to-end-serial", par.Split{Workers: 1, MinWork: par.MinWork}, true}, {"end-to-end-split", par.Split{Workers: 4, MinWork: 1}, true}} {
		k := &Checker{sp: tc.sp}
		v, err := k.Check(c, res, Options{SkipStages: tc.skip, Stop: stop})
		if !errors.Is(err, ErrStopped) || v != nil {
			t.Errorf("%s: got verdict %v, error %v; want ErrStopped", tc.name, v, err)
		}
		if v, err := k.Check(c, res, Options{SkipStages: tc.skip}); err != nil || !v.Pass {
			t.Errorf("%s: without stop: %v %v", tc.name, v, err)
		}
	}
}
