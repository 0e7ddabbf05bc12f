package simtorch_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/gpu/simtorch"
	"github.com/moecheck/moecheck/internal/backends"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

// judge runs spec i of seed on b and judges the result under ct.
func judge(t testing.TB, b gpu.Backend, k *oracle.Checker, seed uint64, i int, ct contract.Contract) (*moe.Case, *oracle.Verdict) {
	t.Helper()
	spec, _ := props.SpecAt(seed, i, props.GenOptions{})
	c, err := spec.Build()
	if err != nil {
		t.Fatalf("case %d: %v", i, err)
	}
	res, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: spec.PoisonPolicy()})
	if err != nil {
		t.Fatalf("case %d (%s): %v", i, spec, err)
	}
	v, err := k.Check(c, res, oracle.Options{Contract: ct})
	if err != nil {
		t.Fatalf("case %d: %v", i, err)
	}
	return c, v
}

var casesFlag = flag.Int("cases", 0, "TestTorchConforms: random cases per contract (default 300, 60 with -short)")

// TestTorchConforms: sim-torch passes `matches` under its declared contract (torch) and under
// any on the property suite's random cases, with no false alarm; and it fails under exact
// (the rounding freedoms it exercises are not exact's). The counts are logged.
func TestTorchConforms(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 60
	}
	if *casesFlag > 0 {
		n = *casesFlag
	}
	b := simtorch.New(simtorch.Options{})
	if got := gpu.ContractOf(b).Name; got != "torch" {
		t.Fatalf("sim-torch declares %q, want torch", got)
	}
	var k oracle.Checker
	for _, ct := range []contract.Contract{contract.Torch(), contract.Any()} {
		per := map[moe.DType]int{}
		start := time.Now()
		for i := 0; i < n; i++ {
			c, v := judge(t, b, &k, 1, i, ct)
			per[c.DType]++
			if !v.Pass {
				spec, _ := props.SpecAt(1, i, props.GenOptions{})
				t.Fatalf("%s: false alarm on case %d (%s): %s", ct, i, spec, v.Summary())
			}
		}
		t.Logf("%s: %d cases pass (bf16 %d, fp16 %d, fp32 %d) in %v", ct, n, per[moe.BF16], per[moe.FP16], per[moe.FP32], time.Since(start).Round(time.Millisecond))
	}
	failed, first := 0, -1
	start := time.Now()
	for i := 0; i < 100; i++ {
		if _, v := judge(t, b, &k, 1, i, contract.Exact()); !v.Pass {
			failed++
			if first < 0 {
				first = i
			}
		}
	}
	if failed == 0 {
		t.Fatal("sim-torch passed exact on 100 cases: the model exercises none of torch's freedoms")
	}
	t.Logf("exact: %d of 100 cases fail (%v); the first at case %d", failed, time.Since(start).Round(time.Millisecond), first)
}

// TestPathConformsToLooserContracts: gpu/sim (docs/path.md, exact) also passes torch and
// any: a contract's freedoms include docs/path.md's choices, so catalog faults can be judged
// under every contract with gpu/sim.
func TestPathConformsToLooserContracts(t *testing.T) {
	n := 150
	if testing.Short() {
		n = 30
	}
	b := sim.New(sim.Options{})
	var k oracle.Checker
	for _, ct := range []contract.Contract{contract.Exact(), contract.Torch(), contract.Any()} {
		for i := 0; i < n; i++ {
			if _, v := judge(t, b, &k, 3, i, ct); !v.Pass {
				t.Fatalf("sim under %s: false alarm on case %d: %s", ct, i, v.Summary())
			}
			// stage-local too: each stage's enclosure under the contract from sim's own stages
			spec, _ := props.SpecAt(3, i, props.GenOptions{})
			c, err := spec.Build()
			if err != nil {
				t.Fatal(err)
			}
			res, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: spec.PoisonPolicy(), Stages: true})
			if err != nil {
				t.Fatal(err)
			}
			if v, err := k.Check(c, res, oracle.Options{Contract: ct}); err != nil || !v.Pass {
				t.Fatalf("sim under %s with stages: case %d: %v %s", ct, i, err, v.Summary())
			}
		}
	}
}

// TestOpen: backends.Open knows sim-torch.
func TestOpen(t *testing.T) {
	b, err := backends.Open("sim-torch", backends.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Name() != simtorch.Name {
		t.Errorf("Open(sim-torch) gave %s", b.Name())
	}
}

// TestRefusesFaults: the model reproduces no catalog fault and says so (the harness's
// fault.Run refuses a backend without fault.Runner).
func TestRefusesFaults(t *testing.T) {
	b := simtorch.New(simtorch.Options{})
	spec, _ := props.SpecAt(1, 0, props.GenOptions{})
	c, err := spec.Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fault.Run(context.Background(), b, c, gpu.RunOptions{}, fault.Of(fault.ZeroTokenRow)); err == nil {
		t.Error("a requested fault was silently ignored")
	}
}

// TestGptOssSigmoidBackwardRounds: regression for the gpt-oss false alarms on the H200
// (transformers' grouped_mm path under torch: dW1, dB1 and dX outside their bounds in bf16
// and fp16). PyTorch's CUDA sigmoid_backward for real dtypes is `a * (scalar_t(1.) - b) * b`
// in scalar_t arithmetic, so in bf16/fp16 each of its three ops rounds to the dtype; sim-torch
// models that, and the oracle's eager enclosure must admit it. With the enclosure of one
// rounding (the freedom removed) this fails within the first few 16-bit gpt-oss cases of the
// stream (46 of the first 600 suite cases failed, all gpt-oss, in dW1, dB1 and dX).
func TestGptOssSigmoidBackwardRounds(t *testing.T) {
	n := 150
	if testing.Short() {
		n = 40
	}
	b := simtorch.New(simtorch.Options{})
	var k oracle.Checker
	ran := 0
	for i := 0; ran < n && i < 100*n; i++ {
		spec, _ := props.SpecAt(1, i, props.GenOptions{})
		if moe.Activation(spec.Act) != moe.GptOss || moe.DType(spec.DType) == moe.FP32 {
			continue
		}
		ran++
		if _, v := judge(t, b, &k, 1, i, contract.Torch()); !v.Pass {
			t.Fatalf("torch: false alarm on gpt-oss case %d (%s): %s", i, spec, v.Summary())
		}
	}
	if ran < n {
		t.Fatalf("only %d gpt-oss 16-bit cases in the stream, want %d", ran, n)
	}
	t.Logf("torch: %d gpt-oss bf16/fp16 cases pass", ran)
}

// TestWGradSlots: batched_mm's weight gradients (per-slot products rounded to the dtype,
// added in the dtype one rounding per add) on long experts, where the dtype accumulation
// drifts furthest from the GEMM's, pass torch (contract.WGradSlots) and fail torch without
// that freedom in 16-bit dtypes (the H200 run of transformers:batched_mm failed `bound
// dW1/dW2` this way before the freedom existed).
func TestWGradSlots(t *testing.T) {
	slots := simtorch.New(simtorch.Options{WGrad: simtorch.WGradSlots})
	noSlots := contract.Torch()
	noSlots.WGradSlots = contract.Sum{}
	var k oracle.Checker
	for _, tc := range []struct {
		name, spec   string
		failsWithout bool
	}{
		{"bf16/long-expert", "T=96 H=16 I=8 E=2 K=2 dtype=bf16 routing=hot-one data=normal seed=3", true},
		{"fp16/long-expert", "T=96 H=16 I=8 E=2 K=2 dtype=fp16 routing=hot-one data=normal seed=4", true},
		{"bf16/small-rows", "T=40 H=2 I=2 E=3 K=1 dtype=bf16 routing=uniform data=normal seed=5", true}, // 2I·H ≤ 32: fp32 sum, one rounding
		{"fp32/long-expert", "T=96 H=16 I=8 E=2 K=2 dtype=fp32 routing=hot-one data=normal seed=6", false},
		{"bf16/gptoss-large", "T=64 H=8 I=8 E=2 K=2 dtype=bf16 act=gptoss layout=transposed bias=1 routing=all-one data=large seed=7", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := props.ParseSpec(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			c, err := spec.Build()
			if err != nil {
				t.Fatal(err)
			}
			res, err := slots.Run(context.Background(), c, gpu.RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range res.DW1 {
				if v != v {
					t.Fatalf("dW1[%d] is NaN: poison the model never writes", i)
				}
			}
			v, err := k.Check(c, res, oracle.Options{Contract: contract.Torch()})
			if err != nil {
				t.Fatal(err)
			}
			if !v.Pass {
				t.Fatalf("torch: false alarm: %s", v.Summary())
			}
			v, err = k.Check(c, res, oracle.Options{Contract: noSlots})
			if err != nil {
				t.Fatal(err)
			}
			if v.Pass == tc.failsWithout {
				t.Errorf("torch without WGradSlots: pass=%v, want %v (%s)", v.Pass, !tc.failsWithout, v.Summary())
			}
		})
	}
}
