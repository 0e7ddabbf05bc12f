package fuzz

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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

// seedInput is one seed of FuzzPath: its bytes and its corpus file from the repository root
// ("" for a hand-written one).
type seedInput struct {
	data []byte
	src  string
}

// seedCorpus adds every corpus case (seeds and regressions) as encoded bytes, and three small
// hand-written inputs (codec version 1: each byte is a value plus '0'). It returns seed input
// i (go test names it FuzzPath/seed#i) with where it comes from.
func seedCorpus(f *testing.F) []seedInput {
	var seeds []seedInput
	if os.Getenv(SeedsVar) == "none" {
		f.Add([]byte{})
		return []seedInput{{data: []byte{}}}
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
			seeds = append(seeds, seedInput{b, filepath.Join(strings.TrimPrefix(dir, "../"), e.Name+corpus.Ext)})
		}
	}
	// T=1 H=1 I=1 E=1 K=1 bf16; the same at EP rank 0 of 2; T=4 H=8 I=6 E=4 K=4 fp16 gpt-oss
	// transposed with biases at EP rank 1 of 8, large data
	for _, b := range []string{"", "0000001", "37533M71D6"} {
		f.Add([]byte(b))
		seeds = append(seeds, seedInput{[]byte(b), ""})
	}
	return seeds
}

// FuzzPath: bytes decode to a case and a poison policy; every property of the default suite
// must hold on the backend of $MOECHECK_BACKEND. The failure message carries the case and the
// failing checks with their locations.
func FuzzPath(f *testing.F) {
	seeds := seedCorpus(f)
	warmUp()
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Env()
		if err != nil {
			t.Fatal(err)
		}
		c, meta := moe.DecodeCase(data, moe.DecodeLimits{})
		tr := props.Trial{Case: c, Poison: corpus.PoisonOf(meta)}
		var save string
		save, tr.Origin = whereFrom(t.Name(), data, seeds, filepath.Join("testdata", "fuzz", "FuzzPath"))
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

// whereFrom says where a FuzzPath input comes from and how to save it: a seed (a corpus file
// or a hand-written input), a file of dir (testdata/fuzz/FuzzPath, go test -run
// FuzzPath/NAME), or the fuzz engine, which writes it after the failure under a name it
// prints below. Under -fuzz every input runs as plain "FuzzPath", so seeds and files are
// also recognized by their bytes.
func whereFrom(testName string, data []byte, seeds []seedInput, dir string) (string, props.Origin) {
	fromSeed := func(i int) (string, props.Origin) {
		if seeds[i].src == "" {
			return "a hand-written seed input of FuzzPath (fuzz/path_test.go)", props.Origin{}
		}
		return "it is the corpus file " + seeds[i].src, props.Origin{Kind: props.FromFile, Path: seeds[i].src}
	}
	fromFile := func(name string) (string, props.Origin) {
		file := filepath.Join("fuzz", dir, name)
		return "save it, from the repository root: moecheck save --fuzz-file " + file,
			props.Origin{Kind: props.FromFuzz, Path: file, Test: "FuzzPath/" + name}
	}
	if _, name, ok := strings.Cut(testName, "/"); ok {
		var i int
		if _, err := fmt.Sscanf(name, "seed#%d", &i); err == nil && i >= 0 && i < len(seeds) {
			return fromSeed(i)
		}
		if fileExists(filepath.Join(dir, name)) {
			return fromFile(name)
		}
	} else {
		for i, s := range seeds {
			if bytes.Equal(s.data, data) {
				return fromSeed(i)
			}
		}
		if entries, err := os.ReadDir(dir); err == nil {
			for _, e := range entries {
				if b, ok := readFuzzFile(filepath.Join(dir, e.Name())); ok && bytes.Equal(b, data) {
					return fromFile(e.Name())
				}
			}
		}
	}
	return "save it, from the repository root: moecheck save --fuzz-file the file named by \"Failing input written to ...\" below", props.Origin{}
}

// readFuzzFile reads the []byte input of a file in go test's fuzz corpus format.
func readFuzzFile(path string) ([]byte, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, false
	}
	lit, ok1 := strings.CutPrefix(strings.TrimSpace(lines[1]), "[]byte(")
	lit, ok2 := strings.CutSuffix(lit, ")")
	if !ok1 || !ok2 {
		return nil, false
	}
	v, err := strconv.Unquote(lit)
	if err != nil {
		return nil, false
	}
	return []byte(v), true
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
