package fuzz

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// seedCorpus adds every corpus case (seeds and regressions) as encoded bytes.
func seedCorpus(f *testing.F) {
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
	for _, b := range [][]byte{{}, {0, 0, 0, 0, 0, 0, 1}, {3, 7, 5, 3, 3, 0x1d, 7, 1, 0x14, 6}} {
		f.Add(b)
	}
}

// FuzzPath: bytes decode to a case and a poison policy; every property of the default suite
// must hold on the backend of $MOECHECK_BACKEND. The failure message carries the case and the
// failing checks with their locations.
func FuzzPath(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Env()
		if err != nil {
			t.Fatal(err)
		}
		c, meta := moe.DecodeCase(data, moe.DecodeLimits{})
		spec := props.Spec{Poison: int(corpus.PoisonOf(meta))}
		_, failed, err := props.CheckCase(context.Background(), env, props.All, c, spec)
		if err != nil {
			t.Fatalf("%s: %v", c.Config, err)
		}
		if failed != nil {
			msg := failed.Message
			for _, fl := range failed.Failures {
				msg += "\n  - " + fl.String()
			}
			t.Fatalf("case %s (poison %s, faults %s): property %s failed: %s\nsave it: moecheck save --fuzz-file %s",
				c.Config, corpus.PoisonOf(meta), env.Faults, failed.Property, msg, filepath.Join("testdata", "fuzz", "FuzzPath", "<file>"))
		}
	})
}
