package moe

import "testing"

func TestTensorNames(t *testing.T) {
	for x := TensorNone; x < numTensors; x++ {
		got, ok := ParseTensor(x.String())
		if !ok || got != x {
			t.Errorf("name=%q: ParseTensor = %v %v, want %v", x.String(), got, ok, x)
		}
		var y Tensor
		b, _ := x.MarshalText()
		if err := y.UnmarshalText(b); err != nil || y != x {
			t.Errorf("text=%q: round trip %v %v", b, y, err)
		}
	}
	if _, ok := ParseTensor("y@local"); ok {
		t.Error("suffix=@local: parsed as a tensor; stage-locality is a field, not a name")
	}
	for s := StageNone; s < numStages; s++ {
		if got, ok := ParseStage(s.String()); !ok || got != s {
			t.Errorf("stage=%q: ParseStage = %v %v", s.String(), got, ok)
		}
	}
}

func TestTensorShape(t *testing.T) {
	for _, cfg := range []Config{{T: 5, H: 6, I: 3, E: 4, K: 2, Bias: true}, {T: 5, H: 6, I: 3, E: 4, K: 2, Layout: Transposed}} {
		want := map[Tensor]int{TensorY: cfg.LenX(), TensorDX: cfg.LenX(), TensorDW1: cfg.LenW1(), TensorDW2: cfg.LenW2(),
			TensorDB1: cfg.LenB1(), TensorDB2: cfg.LenB2(), TensorDRW: cfg.S(), TensorXs: cfg.S() * cfg.H, TensorH1: cfg.S() * 2 * cfg.I,
			TensorAct: cfg.S() * cfg.I, TensorDRWSorted: cfg.S(), TensorOffsets: cfg.E, TensorCase: 0}
		for x, n := range want {
			got, cols := cfg.Shape(x)
			if got != n || (n > 0 && (cols <= 0 || got%cols != 0)) {
				t.Errorf("layout=%s tensor=%s: Shape = %d, %d; want length %d in whole rows", cfg.Layout, x, got, cols, n)
			}
		}
	}
	for _, x := range StageTensors() {
		if !x.IsStage() || x.Output() || x.Stage().String() != x.String() {
			t.Errorf("tensor=%s: stage tensor misclassified (stage %s)", x, x.Stage())
		}
	}
	for _, x := range Outputs() {
		if !x.Output() || x.IsStage() || x.Stage() == StageNone {
			t.Errorf("tensor=%s: output misclassified", x)
		}
	}
}
