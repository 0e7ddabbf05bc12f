package fuzz

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/backends"
	"github.com/moecheck/moecheck/props"
)

// TestCorpusPasses: every seed and regression case, at its full size (FuzzPath skips the
// ones beyond the fuzz codec's limits), passes every property under each of its poison
// policies on the backend of $MOECHECK_BACKEND (default sim), with the faults it records
// switched off: the corpus is correct-path data. It does not read $MOECHECK_FAULTS (that is
// for the fuzz target: `MOECHECK_FAULTS=... go test -fuzz FuzzPath` must reach the fuzzer).
func TestCorpusPasses(t *testing.T) {
	b, err := backends.FromEnv(backends.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	env := &props.Env{Backend: b}
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
				tr := props.Trial{Case: e.Case, Poison: p, Origin: props.Origin{Kind: props.FromFile, Path: filepath.Join(dir, e.Name+corpus.Ext)}}
				_, failed, err := props.CheckTrial(context.Background(), env, nil, tr)
				if u, ok := gpu.IsUnsupported(err); ok {
					t.Logf("%s/%s (poison %s): unsupported by the backend: %s", dir, e.Name, p, u.Reason)
					continue
				}
				if err != nil {
					t.Fatalf("%s/%s: %v", dir, e.Name, err)
				}
				if failed != nil {
					t.Errorf("%s/%s (poison %s): %s\nreproduce: %s", dir, e.Name, p, props.Describe(failed), props.Reproduce(tr, props.How{Backend: os.Getenv(backends.EnvVar)}))
				}
			}
		}
	}
}
