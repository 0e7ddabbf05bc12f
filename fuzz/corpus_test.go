package fuzz

import (
	"context"
	"testing"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/props"
)

// TestCorpusPasses: every seed and regression case, at its full size (FuzzPath skips the
// ones beyond the fuzz codec's limits), passes every property under each of its poison
// policies on the backend of $MOECHECK_BACKEND (default sim), with the faults it records
// switched off: the corpus is correct-path data.
func TestCorpusPasses(t *testing.T) {
	env, err := Env()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"../corpus/seeds", "../corpus/regressions"} {
		es, err := corpus.LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			t.Fatalf("%s: no cases", dir)
		}
		for _, e := range es {
			poisons := e.Poisons
			if len(poisons) == 0 {
				poisons = []gpu.Poison{gpu.PoisonSignature}
			}
			for _, p := range poisons {
				_, failed, err := props.CheckCase(context.Background(), env, props.All(), e.Case, props.Spec{Poison: int(p)})
				if u, ok := gpu.IsUnsupported(err); ok {
					t.Logf("%s/%s (poison %s): unsupported by the backend: %s", dir, e.Name, p, u.Reason)
					continue
				}
				if err != nil {
					t.Fatalf("%s/%s: %v", dir, e.Name, err)
				}
				if failed != nil {
					t.Errorf("%s/%s (poison %s): property %s: %s", dir, e.Name, p, failed.Property, failed.Message)
				}
			}
		}
	}
}
