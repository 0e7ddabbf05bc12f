package fuzz

import (
	"context"
	"github.com/moecheck/moecheck/gpu"
	"os"
	"path/filepath"
	"testing"

	"github.com/moecheck/moecheck/corpus"
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
		spec := props.Spec{Poison: int(corpus.PoisonOf(meta))}
		_, failed, err := props.CheckCase(context.Background(), env, props.All(), c, spec)
		if u, ok := gpu.IsUnsupported(err); ok {
			t.Skipf("%s: outside the backend's capabilities: %s", c.Config, u.Reason)
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Config, err)
		}
		if failed != nil {
			msg := failed.Message
			for _, fl := range failed.Failures {
				msg += "\n  - " + fl.String()
			}
			t.Fatalf("case %s (poison %s, faults %s): property %s failed: %s\nsave it, from the repository root: moecheck save --fuzz-file %s",
				c.Config, corpus.PoisonOf(meta), env.Faults, failed.Property, msg, filepath.Join("fuzz", "testdata", "fuzz", "FuzzPath", "<file>"))
		}
	})
}
