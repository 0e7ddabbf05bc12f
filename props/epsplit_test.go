package props_test

import (
	"context"
	"math"
	"reflect"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

// TestSplitSumWeightSlices: ep-split-sum judges each rank's weight gradients against its
// slice of the unsplit ones — bitwise under exact (gpu/sim passes), within the derived bound
// under torch — so a rank whose dW1 differs in one element by one ulp fails under exact, and
// one off by far more than the enclosures allow fails under torch too.
func TestSplitSumWeightSlices(t *testing.T) {
	unsplit, ranks, whole, res := splitRuns(t, "T=12 H=8 I=8 E=2 K=2 world=3 rank=1 dtype=fp32 routing=uniform seed=5", gpu.PoisonNaN)
	// the first nonzero element of some rank's dW1
	ri, ei := -1, -1
	for i, r := range res {
		for j, v := range r.DW1 {
			if v != 0 && !math.IsInf(float64(v), 0) {
				ri, ei = i, j
				break
			}
		}
		if ri >= 0 {
			break
		}
	}
	if ri < 0 {
		t.Fatal("Slices: no rank has a nonzero dW1 element")
	}
	orig := res[ri].DW1[ei]
	for _, tc := range []struct {
		name  string
		ct    contract.Contract
		value float32
		fail  bool
	}{
		{"Slices/exact/correct", contract.Exact(), orig, false},
		{"Slices/torch/correct", contract.Torch(), orig, false},
		{"Slices/exact/one-ulp", contract.Exact(), math.Nextafter32(orig, float32(math.Inf(1))), true},
		{"Slices/torch/far", contract.Torch(), 3*orig + 1, true},
	} {
		res[ri].DW1 = append([]float32(nil), res[ri].DW1...)
		res[ri].DW1[ei] = tc.value
		fs, err := oracle.CompareSplitSumUnder(tc.ct, unsplit, whole, ranks, res)
		if err != nil {
			t.Fatal(err)
		}
		bad := false
		for _, f := range fs {
			if f.Tensor == moe.TensorDW1 {
				bad = true
			}
		}
		if bad != tc.fail || (!tc.fail && len(fs) > 0) {
			t.Errorf("%s: failures %v, want dW1 failing: %v", tc.name, fs, tc.fail)
		}
	}
}

// TestSplitSumBiasGradOrder (regression, found on the H200): the CUDA path splits the bias
// gradient's index-add into S/(E·1024) partial sums, so a rank (fewer experts) groups its
// rows differently from the unsplit layer and its fp32 dB1 came out one ulp apart (T=256,
// K=8, world 2). Every contract lets the bias gradient be summed in any order, so that is
// legal: ep-split-sum judges the bias-gradient slices within the derived bound, also under
// exact — one ulp passes, a value far off still fails, and dW1 stays bitwise.
func TestSplitSumBiasGradOrder(t *testing.T) {
	unsplit, ranks, whole, res := splitRuns(t, "T=64 H=4 I=4 E=1 K=4 world=2 rank=0 dtype=fp32 bias=1 routing=uniform seed=3", gpu.PoisonNaN)
	ri, ei := -1, -1 // a nonzero dB1 element of some rank
	for i, r := range res {
		for j, v := range r.DB1 {
			if v != 0 && !math.IsInf(float64(v), 0) && !math.IsNaN(float64(v)) {
				ri, ei = i, j
				break
			}
		}
		if ri >= 0 {
			break
		}
	}
	if ri < 0 {
		t.Fatal("BiasOrder: no rank has a nonzero dB1 element")
	}
	orig := res[ri].DB1[ei]
	for _, tc := range []struct {
		name   string
		tensor moe.Tensor
		value  float32
		fail   bool
	}{
		{"BiasOrder/exact/correct", moe.TensorDB1, orig, false},
		{"BiasOrder/exact/one-ulp", moe.TensorDB1, math.Nextafter32(orig, float32(math.Inf(1))), false},
		{"BiasOrder/exact/far", moe.TensorDB1, 3*orig + 1, true},
	} {
		res[ri].DB1 = append([]float32(nil), res[ri].DB1...)
		res[ri].DB1[ei] = tc.value
		fs, err := oracle.CompareSplitSumUnder(contract.Exact(), unsplit, whole, ranks, res)
		if err != nil {
			t.Fatal(err)
		}
		bad := false
		for _, f := range fs {
			if f.Tensor == tc.tensor {
				bad = true
			}
		}
		if bad != tc.fail || (!tc.fail && len(fs) > 0) {
			t.Errorf("%s: failures %v, want %s failing: %v", tc.name, fs, tc.tensor, tc.fail)
		}
	}
}

// splitRuns builds the case of spec, its unsplit layer and rank cases (props.SplitCases), and
// runs them all on one gpu/sim instance under poison p.
func splitRuns(t *testing.T, spec string, p gpu.Poison) (unsplit *moe.Case, ranks []*moe.Case, whole *gpu.Result, res []*gpu.Result) {
	t.Helper()
	sp, err := props.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sp.Build()
	if err != nil {
		t.Fatal(err)
	}
	if unsplit, ranks, err = props.SplitCases(c); err != nil {
		t.Fatal(err)
	}
	b := sim.New(sim.Options{})
	run := func(cc *moe.Case) *gpu.Result {
		r, err := b.Run(context.Background(), cc, gpu.RunOptions{Poison: p})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	whole = run(unsplit)
	res = make([]*gpu.Result, len(ranks))
	for i, rc := range ranks {
		res[i] = run(rc)
	}
	return unsplit, ranks, whole, res
}

// TestCheckerSplitSumSameAsFresh: Checker.CompareSplitSumUnder, whose scratch is kept from
// call to call, gives the failures the package-level function (fresh scratch) gives, over a
// sequence of cases of growing and shrinking sizes, every contract, correct and faulty
// runs (failures with their values and bounds compared field by field).
func TestCheckerSplitSumSameAsFresh(t *testing.T) {
	specs := []string{
		"T=12 H=8 I=8 E=2 K=2 world=3 rank=1 dtype=fp32 routing=uniform seed=5",
		"T=40 H=24 I=20 E=3 K=2 world=2 rank=0 dtype=bf16 bias=1 routing=uniform seed=9",
		"T=3 H=2 I=3 E=1 K=1 world=4 rank=3 dtype=fp16 routing=uniform seed=2",
		"T=64 H=4 I=4 E=1 K=4 world=2 rank=0 dtype=fp32 bias=1 routing=uniform seed=3",
		"T=7 H=5 I=6 E=2 K=3 world=2 rank=1 dtype=bf16 routing=uniform seed=4",
	}
	var k oracle.Checker
	for _, ct := range []contract.Contract{contract.Exact(), contract.Torch(), contract.Any()} {
		for i, spec := range specs {
			unsplit, ranks, whole, res := splitRuns(t, spec, gpu.PoisonNaN)
			if i%2 == 1 { // a wrong rank: failures with values and bounds
				r := res[len(res)-1]
				r.Y = append([]float32(nil), r.Y...)
				r.DW1 = append([]float32(nil), r.DW1...)
				r.Y[0] += 1
				r.DW1[len(r.DW1)-1] = 3*r.DW1[len(r.DW1)-1] + 1
			}
			want, err := oracle.CompareSplitSumUnder(ct, unsplit, whole, ranks, res)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.CompareSplitSumUnder(ct, unsplit, whole, ranks, res)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("contract %s, %s: kept scratch %v, fresh %v", ct, spec, got, want)
			}
			if i%2 == 1 && len(want) == 0 {
				t.Fatalf("contract %s, %s: the wrong rank passed", ct, spec)
			}
		}
	}
}
