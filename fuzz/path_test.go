package fuzz

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/backends"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// SeedsVar set to "none" leaves the corpus out of FuzzPath's seeds (only the empty input is
// added): the fuzzer must then find a fault from scratch (scripts/fuzz-time-to-find.sh).
const SeedsVar = "MOECHECK_FUZZ_SEEDS"

// seedCorpus adds every corpus case (seeds and regressions) as encoded bytes, and three small
// hand-written inputs (codec version 1: each byte is a value plus '0'). It returns where seed
// input i (go test names it FuzzPath/seed#i) comes from: its corpus file from the repository
// root, "" for a hand-written one.
func seedCorpus(f *testing.F) []string {
	var src []string
	if os.Getenv(SeedsVar) == "none" {
		f.Add([]byte{})
		return []string{""}
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
			src = append(src, filepath.Join(strings.TrimPrefix(dir, "../"), e.Name+corpus.Ext))
		}
	}
	// T=1 H=1 I=1 E=1 K=1 bf16; the same at EP rank 0 of 2; T=4 H=8 I=6 E=4 K=4 fp16 gpt-oss
	// transposed with biases at EP rank 1 of 8, large data
	for _, b := range []string{"", "0000001", "37533M71D6"} {
		f.Add([]byte(b))
		src = append(src, "")
	}
	return src
}

// FuzzPath: bytes decode to a case and a poison policy; every property of the default suite
// must hold on the backend of $MOECHECK_BACKEND. The failure message carries the case and the
// failing checks with their locations.
func FuzzPath(f *testing.F) {
	src := seedCorpus(f)
	warmUp()
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Env()
		if err != nil {
			t.Fatal(err)
		}
		c, meta := moe.DecodeCase(data, moe.DecodeLimits{})
		tr := props.Trial{Case: c, Poison: corpus.PoisonOf(meta)}
		// where the input comes from: a seed (a corpus file or a hand-written input), a file
		// of testdata/fuzz/FuzzPath (go test -run FuzzPath/NAME), or the fuzz engine, which
		// writes it after this failure under a name it prints below
		save := "save it, from the repository root: moecheck save --fuzz-file the file named by \"Failing input written to ...\" below"
		if _, name, ok := strings.Cut(t.Name(), "/"); ok {
			var i int
			if _, err := fmt.Sscanf(name, "seed#%d", &i); err == nil && i >= 0 && i < len(src) {
				save = "a hand-written seed input of FuzzPath (fuzz/path_test.go)"
				if src[i] != "" {
					save = "it is the corpus file " + src[i]
					tr.Origin = props.Origin{Kind: props.FromFile, Path: src[i]}
				}
			} else if path := filepath.Join("testdata", "fuzz", "FuzzPath", name); fileExists(path) {
				file := filepath.Join("fuzz", path)
				save = "save it, from the repository root: moecheck save --fuzz-file " + file
				tr.Origin = props.Origin{Kind: props.FromFuzz, Path: file, Test: t.Name()}
			}
		}
		_, failed, err := props.CheckTrial(context.Background(), env, nil, tr)
		if u, ok := gpu.IsUnsupported(err); ok {
			t.Skipf("%s: outside the backend's capabilities: %s", c.Config, u.Reason)
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Config, err)
		}
		if failed != nil {
			msg := fmt.Sprintf("case %s (poison %s, faults %s): %s", c.Config, tr.Poison, env.Faults, props.Describe(failed))
			if tr.Origin.Kind != props.FromNowhere {
				msg += "\nreproduce (from the repository root): " + props.Reproduce(tr, props.How{Backend: os.Getenv(backends.EnvVar), Faults: env.Faults})
			}
			t.Fatalf("%s\n%s", msg, save)
		}
	})
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
