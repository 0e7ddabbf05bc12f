package simtorch

import (
	"context"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

// freedomCases pairs each model choice with the contract field that allows it.
var freedomCases = []struct {
	name  string
	set   func(*freedoms)
	field func(*contract.Contract) *contract.Rounding // a Rounding field, or nil for a Sum
	sum   func(*contract.Contract) *contract.Sum
}{
	{"bias-after-gemm", func(f *freedoms) { f.biasAfter = true }, func(c *contract.Contract) *contract.Rounding { return &c.GEMMBias }, nil},
	{"eager-activation", func(f *freedoms) { f.eagerAct = true }, func(c *contract.Contract) *contract.Rounding { return &c.Activation }, nil},
	{"drw-dtype-products", func(f *freedoms) { f.drwDtype = true }, func(c *contract.Contract) *contract.Rounding { return &c.DRWProducts }, nil},
	{"weight-kept-fp32", func(f *freedoms) { f.weightFP32 = true }, func(c *contract.Contract) *contract.Rounding { return &c.Weight }, nil},
	{"combine-dtype-atomics", func(f *freedoms) { f.combineAtomic = true }, nil, func(c *contract.Contract) *contract.Sum { return &c.Combine }},
	{"scatter-dtype-atomics", func(f *freedoms) { f.scatterAtomic = true }, nil, func(c *contract.Contract) *contract.Sum { return &c.Scatter }},
	{"bias-grad-dtype-atomics", func(f *freedoms) { f.biasAtomic = true }, nil, func(c *contract.Contract) *contract.Sum { return &c.BiasGrad }},
	{"wgrad-per-slot-products", func(f *freedoms) { f.wgradSlots = true }, nil, func(c *contract.Contract) *contract.Sum { return &c.WGradSlots }},
}

// firstFailure runs the property suite's cases 0..n−1 (seed 2) on a model making choices fr
// and returns the index of the first whose `matches` verdict under ct fails, or −1.
func firstFailure(t *testing.T, fr freedoms, ct contract.Contract, n int) int {
	t.Helper()
	b := &Backend{fr: &fr}
	var k oracle.Checker
	for i := 0; i < n; i++ {
		spec, _ := props.SpecAt(2, i, props.GenOptions{})
		c, err := spec.Build()
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.Run(context.Background(), c, gpu.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := k.Check(c, res, oracle.Options{Contract: ct})
		if err != nil {
			t.Fatal(err)
		}
		if !v.Pass {
			return i
		}
	}
	return -1
}

// TestContractNeedsEachFreedom: each built-in contract fails when one of its rounding
// freedoms is removed.
//   - torch: sim-torch (every torch choice) passes torch, and fails torch with any one of its
//     freedoms set back to docs/path.md's choice;
//   - any: a model making one choice (the others as docs/path.md) passes any, and fails any
//     without that freedom;
//   - exact: the model with every choice as docs/path.md (its GEMM order still depending on
//     the group size: exact's freedom of fp32 accumulation in any order) passes exact, and
//     each single other choice fails it.
func TestContractNeedsEachFreedom(t *testing.T) {
	const n = 150
	remove := func(ct contract.Contract, i int) (contract.Contract, bool) {
		fc := freedomCases[i]
		if fc.field != nil {
			p := fc.field(&ct)
			had := *p != contract.AsPath
			*p = contract.AsPath
			return ct, had
		}
		p := fc.sum(&ct)
		had := *p != (contract.Sum{})
		*p = contract.Sum{}
		return ct, had
	}
	t.Run("torch", func(t *testing.T) {
		if i := firstFailure(t, torchFreedoms(), contract.Torch(), n); i >= 0 {
			t.Fatalf("sim-torch fails torch at case %d", i)
		}
		for i, fc := range freedomCases {
			ct, had := remove(contract.Torch(), i)
			if !had {
				continue
			}
			if j := firstFailure(t, torchFreedoms(), ct, n); j < 0 {
				t.Errorf("torch without %s: sim-torch still passes %d cases (the freedom is not needed)", fc.name, n)
			} else {
				t.Logf("torch without %s: fails at case %d", fc.name, j)
			}
		}
	})
	t.Run("any", func(t *testing.T) {
		for i, fc := range freedomCases {
			var fr freedoms
			fc.set(&fr)
			if j := firstFailure(t, fr, contract.Any(), n); j >= 0 {
				t.Errorf("any: the model with %s fails at case %d", fc.name, j)
				continue
			}
			ct, had := remove(contract.Any(), i)
			if !had {
				t.Fatalf("any lacks %s", fc.name)
			}
			if j := firstFailure(t, fr, ct, n); j < 0 {
				t.Errorf("any without %s: the model still passes %d cases", fc.name, n)
			} else {
				t.Logf("any without %s: fails at case %d", fc.name, j)
			}
		}
	})
	t.Run("exact", func(t *testing.T) {
		if j := firstFailure(t, freedoms{}, contract.Exact(), n); j >= 0 {
			t.Fatalf("the docs/path.md model fails exact at case %d", j)
		}
		for _, fc := range freedomCases {
			var fr freedoms
			fc.set(&fr)
			if j := firstFailure(t, fr, contract.Exact(), n); j < 0 {
				t.Errorf("exact: the model with %s passes %d cases", fc.name, n)
			} else {
				t.Logf("exact with %s: fails at case %d", fc.name, j)
			}
		}
	})
}

// TestReducedPrecisionReductionFreedom: the torch contract's library switch for cuBLAS's
// reduced-precision split-K reduction (contract.ReducedPrecisionReduction, docs/oracle.md
// §9.6) is needed and sufficient for a model whose bf16/fp16 GEMMs reduce their partials in
// the dtype: the model passes torch with the freedom, fails torch without it, and fails exact.
func TestReducedPrecisionReductionFreedom(t *testing.T) {
	const n = 150
	fr := torchFreedoms()
	fr.splitDtype = true
	rpr := contract.Torch().WithReduced(contract.Reduced{BF16: true, FP16: true})
	if i := firstFailure(t, fr, rpr, n); i >= 0 {
		t.Fatalf("rpr-passes: the model fails %s at case %d", rpr, i)
	}
	if j := firstFailure(t, fr, contract.Torch(), n); j < 0 {
		t.Errorf("rpr-needed: torch without the freedom still passes %d cases", n)
	} else {
		t.Logf("torch without reduced-precision-reduction: fails at case %d", j)
	}
	alone := freedoms{splitDtype: true}
	if j := firstFailure(t, alone, contract.Exact(), n); j < 0 {
		t.Errorf("rpr-exact: exact passes the model with reduced-precision reduction on %d cases", n)
	}
	// the declared contract follows the option
	if got := New(Options{ReducedPrecisionReduction: true}).Contract(); got != rpr {
		t.Errorf("rpr-declared: %s", got)
	}
	if got := New(Options{}).Contract(); got != contract.Torch() {
		t.Errorf("rpr-default: %s", got)
	}
}
