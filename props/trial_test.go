package props_test

import (
	"testing"

	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/props"
)

// TestReproduce: one function renders the reproduce line of every origin, for CLI backends
// and for a backend only the user's test knows (Verify).
func TestReproduce(t *testing.T) {
	spec, err := props.ParseSpec("T=2 H=4 I=4 E=2 K=1 seed=3")
	if err != nil {
		t.Fatal(err)
	}
	faults := fault.Of(fault.NoMaskUpDgrad)
	for _, tc := range []struct {
		name   string
		origin props.Origin
		how    props.How
		want   string
	}{
		{"spec/sim", props.Origin{Kind: props.FromSpec, Spec: spec}, props.How{Backend: "sim"},
			"moecheck check --backend sim --spec '" + spec.String() + "'"},
		{"spec/worker-faults-nostages", props.Origin{Kind: props.FromSpec, Spec: spec},
			props.How{Backend: "worker:./w -backend cuda", Faults: faults, NoStages: true},
			"moecheck check --backend 'worker:./w -backend cuda' --spec '" + spec.String() + "' --faults no-mask-up-dgrad --no-stages"},
		{"file", props.Origin{Kind: props.FromFile, Path: "corpus/seeds/a b.case"}, props.How{Backend: "cuda", Properties: "matches"},
			"moecheck replay --backend cuda --properties matches 'corpus/seeds/a b.case'"},
		{"preset", props.Origin{Kind: props.FromPreset, Preset: "qwen3-30b-a3b/ep8/rank3/T4/seed1"}, props.How{Backend: "sim", Properties: "matches"},
			"moecheck check --backend sim --preset qwen3-30b-a3b/ep8/rank3/T4/seed1 --properties matches"},
		{"fuzz", props.Origin{Kind: props.FromFuzz, Path: "fuzz/testdata/fuzz/FuzzPath/ab12", Test: "FuzzPath/ab12"}, props.How{Backend: "cuda", Faults: faults},
			"MOECHECK_BACKEND=cuda MOECHECK_FAULTS=no-mask-up-dgrad go test ./fuzz -run '^FuzzPath$/^ab12$'"},
		{"verify/external-backend", props.Origin{Kind: props.FromVerify, Path: "testdata/moecheck/TestX/matches/fail-1.case", Test: "TestX/matches/fail-1", Dir: "/src/my kernels"},
			props.How{}, "cd '/src/my kernels' && go test -run '^TestX$/^matches$/^fail-1$'"},
		{"nowhere", props.Origin{}, props.How{Backend: "sim"}, "(a case built in code: no command line reproduces it)"},
	} {
		if got := props.Reproduce(props.Trial{Origin: tc.origin}, tc.how); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}
