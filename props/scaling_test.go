package props_test

import (
	"context"
	"testing"

	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/props"
)

// Power-of-two scaling applies only where every rounding point stays in the normal range:
// the case a 50,000-case run found (integer data driving a gpt-oss gate to −60, so that
// sigmoid(1.702·g) underflows) is out of its scope, ordinary cases are in it and pass.
func TestPowerOfTwoScalingScope(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spec    string
		applies bool
	}{
		{"scaling/underflowing-gate", "T=1 H=40 I=38 E=3 K=1 world=1 rank=0 global=0 dtype=fp32 act=gptoss layout=transposed bias=1 routing=uniform weights=tiny data=integer poison=zeros seed=1988746664", false},
		{"scaling/normal-fp32", "T=6 H=16 I=8 E=3 K=2 world=1 rank=0 global=0 dtype=fp32 act=swiglu layout=standard bias=1 routing=uniform weights=unit data=normal poison=nan seed=7", true},
		{"scaling/normal-bf16-gptoss", "T=6 H=16 I=8 E=3 K=2 world=2 rank=1 global=1 dtype=bf16 act=gptoss layout=transposed bias=1 routing=zipf weights=unit data=normal poison=nan seed=8", true},
		{"scaling/fp16", "T=6 H=16 I=8 E=3 K=2 world=1 rank=0 global=0 dtype=fp16 act=swiglu layout=standard bias=0 routing=uniform weights=unit data=normal poison=nan seed=9", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := props.ParseSpec(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := props.SpecTrial(sp)
			if err != nil {
				t.Fatal(err)
			}
			p, err := props.ByName("power-of-two-scaling")
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Applies(tr.Case); got != tc.applies {
				t.Fatalf("applies = %v, want %v", got, tc.applies)
			}
			if !tc.applies {
				return
			}
			o, err := p.Check(context.Background(), &props.Env{Backend: sim.New(sim.Options{})}, tr)
			if err != nil {
				t.Fatal(err)
			}
			if !o.Pass {
				t.Fatalf("correct path fails: %s", o.Message)
			}
		})
	}
}
