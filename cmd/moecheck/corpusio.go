package main

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// corpusCase is one corpus entry as the commands use it.
type corpusCase struct {
	Name       string // entry name (file name without .case, relative to the loaded directory)
	Path       string // file
	Case       *moe.Case
	Spec       props.Spec       // generation context: the poison policy single-run properties use
	Properties []props.Property // the entry's property hint (nil: all)
}

// loadCorpus loads corpus files and directories.
func loadCorpus(paths []string) ([]corpusCase, error) {
	// TODO(corpus): package corpus is not in the tree yet.
	return nil, internalErr(fmt.Errorf("the corpus package is not available in this build"))
}

// saveCase writes a case into a corpus directory with provenance comments.
func saveCase(dir, name string, c *moe.Case, poison gpu.Poison, provenance []string) (string, error) {
	return "", internalErr(fmt.Errorf("the corpus package is not available in this build"))
}

// shortHash is 8 hex digits of an FNV-1a hash over the case's config, routing and data.
func shortHash(c *moe.Case) string {
	h := fnv.New64a()
	fmt.Fprint(h, c.Config.String())
	var b [8]byte
	for _, id := range c.Routing.IDs {
		binary.LittleEndian.PutUint32(b[:4], uint32(id))
		h.Write(b[:4])
	}
	for _, v := range [][]float64{c.Routing.Weights, c.X, c.W1, c.B1, c.W2, c.B2, c.DY} {
		for _, x := range v {
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(x))
			h.Write(b[:])
		}
	}
	return fmt.Sprintf("%08x", uint32(h.Sum64()))
}
