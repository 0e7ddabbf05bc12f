package props_test

import (
	"context"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/props"
)

// TestEPSplitBudget: a rank whose unsplit layer is over EPSplitMaxElements skips ep-split-sum
// with the reason and the limit, before building the layer (regression: a Qwen3-30B-A3B EP-8
// preset at T=128 built 1.2 billion values and ran out of 24 GB); a small one still runs.
func TestEPSplitBudget(t *testing.T) {
	p, err := props.ByName("ep-split-sum")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, spec string
		skip       bool
	}{
		// 4 local experts of 80×80 on 1024 ranks: the case holds 77k values, its unsplit
		// layer 4096 experts (78.6 million values) and its ranks as many again
		{"budget/over", "T=2 H=80 I=80 E=4 K=2 world=1024 rank=5 global=0 dtype=bf16 act=swiglu layout=standard bias=0 routing=uniform weights=unit data=normal poison=nan seed=1", true},
		{"budget/small", "T=2 H=8 I=8 E=4 K=2 world=4 rank=1 global=0 dtype=bf16 act=swiglu layout=standard bias=0 routing=uniform weights=unit data=normal poison=nan seed=1", false},
	} {
		s, err := props.ParseSpec(tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c, err := s.Build()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		outs, failed, skipped, err := props.CheckTrialSkips(context.Background(), simEnv(0),
			[]props.Property{p}, props.Trial{Case: c, Poison: gpu.PoisonNaN})
		if tc.skip {
			if _, ok := gpu.IsUnsupported(err); !ok || len(skipped) != 1 || skipped[0].Property != "ep-split-sum" ||
				!strings.Contains(skipped[0].Reason, "EPSplitMaxElements") || !strings.Contains(skipped[0].Reason, "67108864") {
				t.Fatalf("%s: got outs %v, skipped %+v, err %v; want ep-split-sum skipped naming the budget", tc.name, outs, skipped, err)
			}
			continue
		}
		if err != nil || failed != nil || len(skipped) != 0 || len(outs) != 1 {
			t.Fatalf("%s: got outs %v, failed %v, skipped %v, err %v; want one passing outcome", tc.name, outs, failed, skipped, err)
		}
	}
}
