package fuzz

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/internal/backends"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// SeedsVar set to "none" leaves the corpus out of FuzzPath's seeds (only the empty input is
// added): the fuzzer must then find a fault from scratch (scripts/fuzz-time-to-find.sh).
const SeedsVar = "MOECHECK_FUZZ_SEEDS"

// seedCorpus adds every corpus case (seeds and regressions) as encoded bytes, and three small
// hand-written inputs (codec version 1: each byte is a value plus '0').
func seedCorpus(f *testing.F) {
	if os.Getenv(SeedsVar) == "none" {
		f.Add([]byte{})
		return
	}
	for _, dir := range []string{"../corpus/seeds", "../corpus/regressions"} {
		entries, err := corpus.LoadDir(dir)
		if err != nil {
			f.Fatalf("loading %s: %v", dir, err)
		}
		for _, e := range entries {
			b, err := e.Bytes(moe.DecodeLimits{})
			if err != nil {
				continue // larger than the fuzz limits: replayed by `moecheck replay` instead
			}
			f.Add(b)
		}
	}
	// T=1 H=1 I=1 E=1 K=1 bf16; the same at EP rank 0 of 2; T=4 H=8 I=6 E=4 K=4 fp16 gpt-oss
	// transposed with biases at EP rank 1 of 8, large data
	for _, b := range []string{"", "0000001", "37533M71D6"} {
		f.Add([]byte(b))
	}
}

// FuzzPath: bytes decode to a case and a poison policy; every property of the default suite
// must hold on the backend of $MOECHECK_BACKEND. The failure message carries the case and the
// failing checks with their locations.
func FuzzPath(f *testing.F) {
	seedCorpus(f)
	warmUp()
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Env()
		if err != nil {
			t.Fatal(err)
		}
		c, meta := moe.DecodeCase(data, moe.DecodeLimits{})
		tr := props.Trial{Case: c, Poison: corpus.PoisonOf(meta)}
		// an input replayed from testdata (go test -run FuzzPath/NAME) has a known file; a new
		// one is written by the fuzz engine after this failure, under a name it prints below
		file := "the file named by \"Failing input written to ...\" below"
		if _, name, ok := strings.Cut(t.Name(), "/"); ok {
			if path := filepath.Join("testdata", "fuzz", "FuzzPath", name); fileExists(path) {
				file = filepath.Join("fuzz", path)
				tr.Origin = props.Origin{Kind: props.FromFuzz, Path: file, Test: t.Name()}
			}
		}
		_, failed, err := props.CheckTrial(context.Background(), env, nil, tr)
		if err != nil {
			t.Fatalf("%s: %v", c.Config, err)
		}
		if failed != nil {
			msg := fmt.Sprintf("case %s (poison %s, faults %s): %s", c.Config, tr.Poison, env.Faults, props.Describe(failed))
			if tr.Origin.Kind == props.FromFuzz {
				msg += "\nreproduce: " + props.Reproduce(tr, props.How{Backend: os.Getenv(backends.EnvVar), Faults: env.Faults})
			}
			t.Fatalf("%s\nsave it, from the repository root: moecheck save --fuzz-file %s", msg, file)
		}
	})
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
