package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// corpusCase is one corpus entry as the commands use it.
type corpusCase struct {
	Name       string // "<directory base>/<entry name>" for entries of a directory, else the entry name
	Path       string // the file
	Entry      *corpus.Entry
	Case       *moe.Case
	Trial      props.Trial      // the case under the entry's first poison policy (signature when it names none), from its file
	Poisons    []gpu.Poison     // every policy the entry names (nil: none named)
	Properties []props.Property // the entry's property hint (nil: all)
}

// loadCorpus loads corpus files and directories (every .case file of a directory, sorted),
// refusing cases beyond lim. A file that does not parse is bad input: a usage error naming
// the file and line.
func loadCorpus(paths []string, lim moe.Limits) ([]corpusCase, error) {
	cs, _, err := loadCorpusFiles(paths, lim, false)
	return cs, err
}

// badFile is a corpus file that did not parse.
type badFile struct {
	path string
	err  error // names the file and line
}

// loadCorpusFiles is loadCorpus; with tolerant, files that do not parse are returned in bad
// and the rest are loaded.
func loadCorpusFiles(paths []string, lim moe.Limits, tolerant bool) (out []corpusCase, bad []badFile, err error) {
	po := corpus.ParseOptions{Limits: lim}
	add := func(e *corpus.Entry, path, name string) error {
		cc := corpusCase{Name: name, Path: path, Entry: e, Case: e.Case, Poisons: e.Poisons,
			Trial: props.Trial{Case: e.Case, Poison: gpu.PoisonSignature, Origin: props.Origin{Kind: props.FromFile, Path: path}}}
		if len(e.Poisons) > 0 {
			cc.Trial.Poison = e.Poisons[0]
		}
		for _, n := range e.Properties {
			p, err := props.ByName(n)
			if err != nil {
				return usageErr("%s: property hint: %v", path, err)
			}
			cc.Properties = append(cc.Properties, p)
		}
		out = append(out, cc)
		return nil
	}
	// read parses one file and adds it under name, or records it as bad (tolerant).
	read := func(path, name string) error {
		e, err := corpus.ReadFileWith(path, po)
		if err != nil {
			if !tolerant {
				return usageErr("%v", err)
			}
			bad = append(bad, badFile{path, err})
			return nil
		}
		return add(e, path, name)
	}
	for _, path := range paths {
		st, err := os.Stat(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil, usageErr("%s: no such file or directory", path)
			}
			return nil, nil, internalErr(err)
		}
		if !st.IsDir() {
			if err := read(path, corpus.NameOf(path)); err != nil {
				return nil, nil, err
			}
			continue
		}
		files, err := walkCases(path)
		if err != nil {
			return nil, nil, usageErr("%v", err)
		}
		for _, f := range files {
			rel, err := filepath.Rel(path, f)
			if err != nil {
				return nil, nil, internalErr(err)
			}
			name := filepath.ToSlash(filepath.Join(filepath.Base(filepath.Clean(path)), strings.TrimSuffix(rel, corpus.Ext)))
			if err := read(f, name); err != nil {
				return nil, nil, err
			}
		}
	}
	return out, bad, nil
}

// walkCases returns the .case files under dir and its subdirectories, in lexical order,
// leaving out directories named testdata or starting with "." or "_" (as the go command
// does: test fixtures are not corpus cases).
func walkCases(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != dir && (n == "testdata" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, corpus.Ext) && d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// specData is the data description of a spec's case: Spec.Build generates its tensors with
// moe.Generate from the spec's seed and data mode.
func specData(s props.Spec) *corpus.DataSpec {
	n, err := props.ParseSpec(s.String()) // the normalized fields
	if err != nil {
		return nil
	}
	return &corpus.DataSpec{Seed: uint64(n.Seed), Mode: moe.DataMode(n.Data)}
}

// sanitizeName keeps a corpus name to letters, digits, '.', '_' and '-'.
func sanitizeName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), ".-")
}

// saveEntry writes an entry as dir/NAME.case via corpus.WriteFile (temp file + rename). An
// existing file with the same case is left alone (saved = false); one with a different case
// is a usage error asking for another --name. A data description that does not reproduce
// the tensors is dropped (the values are written out).
func saveEntry(dir string, e *corpus.Entry) (path string, saved bool, err error) {
	e.Name = sanitizeName(e.Name)
	if e.Name == "" {
		return "", false, usageErr("empty corpus name")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, internalErr(err)
	}
	path = filepath.Join(dir, e.Name+corpus.Ext)
	if old, err := corpus.ReadFile(path); err == nil {
		if moe.EqualCases(old.Case, e.Case) {
			return path, false, nil
		}
		return "", false, usageErr("%s exists and holds another case: choose another --name", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, usageErr("%s exists and does not parse (%v): choose another --name", path, err)
	}
	err = corpus.WriteFile(path, e)
	if err != nil && e.Data != nil {
		e.Data = nil
		err = corpus.WriteFile(path, e)
	}
	if err != nil {
		return "", false, internalErr(fmt.Errorf("saving %s: %w", path, err))
	}
	return path, true, nil
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
