package oracle_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/reference"
)

// sharpnessTable pools oracle.Sharpness over seeds 1..n of one (dtype, data, activation)
// configuration (T=16 H=128 I=64 E=4 K=4, uniform routing, biases on even seeds).
func sharpnessTable(t testing.TB, d moe.DType, mode moe.DataMode, act moe.Activation, n int) map[string]*oracle.TensorSharpness {
	return sharpnessUnder(t, d, mode, act, n, contract.Contract{})
}

func sharpnessUnder(t testing.TB, d moe.DType, mode moe.DataMode, act moe.Activation, n int, ct contract.Contract) map[string]*oracle.TensorSharpness {
	t.Helper()
	pooled := map[string]*oracle.TensorSharpness{}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		cfg := moe.Config{T: 16, H: 128, I: 64, E: 4, K: 4, DType: d, Act: act, Bias: seed%2 == 0}
		if act == moe.GptOss {
			cfg.Layout = moe.Transposed
		}
		c := casetest.CaseMode(t, cfg, seed, mode)
		en, err := oracle.EncloseUnder(c, ct)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := reference.Run(c, reference.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range oracle.Sharpness(c, en, ref) {
			if p := pooled[s.Tensor.String()]; p != nil {
				p.Merge(s)
			} else {
				s := s
				pooled[s.Tensor.String()] = &s
			}
		}
	}
	return pooled
}

// TestSharpnessTable logs the sharpness of the end-to-end enclosure per dtype × data mode ×
// activation (docs/oracle.md §8 quotes it): run with -run SharpnessTable -v.
func TestSharpnessTable(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| dtype | data | act | tensor | unconstrained | of which ref out of range | r > RMS/10 | median r/|ref| | p99 r/|ref| |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, d := range []moe.DType{moe.BF16, moe.FP16, moe.FP32} {
		for _, mode := range moe.DataModes() {
			for _, act := range []moe.Activation{moe.SwiGLU, moe.GptOss} {
				p := sharpnessTable(t, d, mode, act, 3)
				for _, name := range []string{"y", "dX", "dW1", "dW2", "drw"} {
					s := p[name]
					fmt.Fprintf(&b, "| %s | %s | %s | %s | %.1f%% | %d | %.1f%% | %.2g | %.2g |\n", d, mode, act, name,
						100*float64(s.Unconstrained)/float64(s.N), s.RefOutOfRange, 100*float64(s.Wide)/float64(s.N), s.Median(), s.P99())
				}
			}
		}
	}
	t.Log(b.String())
}

// TestSharpnessContracts logs what each contract's freedoms cost in sharpness (normal data,
// SwiGLU, biases on seed 2; docs/oracle.md §9 quotes it): run with -run SharpnessContracts -v.
func TestSharpnessContracts(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| dtype | contract | y | dX | dW1 | dW2 | drw |\n|---|---|---|---|---|---|---|\n")
	for _, d := range []moe.DType{moe.BF16, moe.FP16, moe.FP32} {
		for _, ct := range []contract.Contract{contract.Exact(), contract.Torch(), contract.Any()} {
			p := sharpnessUnder(t, d, moe.Normal, moe.SwiGLU, 3, ct)
			fmt.Fprintf(&b, "| %s | %s |", d, ct)
			for _, name := range []string{"y", "dX", "dW1", "dW2", "drw"} {
				s := p[name]
				fmt.Fprintf(&b, " %.2g / %.2g |", s.Median(), s.P99())
			}
			b.WriteString("\n")
		}
	}
	t.Log(b.String())
}
