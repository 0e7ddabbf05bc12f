package props

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
)

// VerifyOptions tune Verify. The zero value runs every property on 200 generated cases from
// seed 1 with default generator bounds and shrinking, and persists failures under
// testdata/moecheck.
type VerifyOptions struct {
	Cases      int // generated cases per property (default 200; -short: 40)
	Seed       uint64
	Gen        GenOptions
	Properties []Property
	NoStages   bool // the backend reports no stages: end-to-end checks only
	// New opens a fresh instance of the backend (same configuration) for the history
	// property; nil: that property is skipped. A history failure is persisted as its second
	// case only; its replay runs it after the prior PriorOf derives from that case.
	New func() (gpu.Backend, error)
	// Dir is the folder failing cases are persisted in and replayed from, relative to the
	// test's package directory (default "testdata/moecheck"). Each property's failures go to
	// Dir/<TestName>/<property>/<name>.case.
	Dir string
}

// DefaultVerifyDir is where Verify persists failing cases by default.
const DefaultVerifyDir = "testdata/moecheck"

// Verify is the conformance entry point: a user's module verifies its own Backend with one
// line,
//
//	func TestMyBackend(t *testing.T) { props.Verify(t, mybackend.New(), props.VerifyOptions{}) }
//
// It works like pgregory.net/rapid and Go's native fuzzing. Each property is a subtest
// (TestMyBackend/matches, …). In it, every case persisted by an earlier failing run is
// replayed first, each as its own subtest named by its file (TestMyBackend/matches/fail-…);
// then the generated cases run (TestMyBackend/matches/generated). The first failing
// generated case is shrunk, written (temporary file + rename) to
// testdata/moecheck/TestMyBackend/matches/fail-<hash>.case, and reported with the command
// that reruns exactly that case:
//
//	cd /path/to/pkg && go test -run '^TestMyBackend$/^matches$/^fail-…$'
//
// Further failures of the same property are counted in one line, not repeated. Delete a
// persisted file once the bug it shows is fixed (or keep it as a regression test).
func Verify(t *testing.T, b gpu.Backend, o VerifyOptions) {
	t.Helper()
	n := o.Cases
	if n == 0 {
		n = 200
		if testing.Short() {
			n = 40
		}
	}
	seed := o.Seed
	if seed == 0 {
		seed = 1
	}
	dir := o.Dir
	if dir == "" {
		dir = DefaultVerifyDir
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("moecheck: %v", err)
	}
	ps := o.Properties
	if len(ps) == 0 {
		ps = allProperties
	}
	env := &Env{Backend: b, NoStages: o.NoStages, New: o.New}
	top := strings.SplitN(t.Name(), "/", 2)[0]
	failedProps, replayed := 0, 0
	for _, p := range ps {
		pdir := filepath.Join(dir, top, p.Name)
		ok := t.Run(p.Name, func(t *testing.T) {
			replayed += verifyReplay(t, env, p, pdir, wd)
			t.Run("generated", func(t *testing.T) {
				verifyGenerated(t, env, p, o.Gen, seed, n, pdir, wd)
			})
		})
		if !ok {
			failedProps++
		}
	}
	t.Logf("moecheck: %d of %d properties failing; %d persisted case(s) replayed, then up to %d generated cases per property (seed %d); failures persisted under %s",
		failedProps, len(ps), replayed, n, seed, filepath.Join(dir, top))
}

// verifyReplay replays every case persisted for property p, each as a subtest named by its
// file; it returns how many it found.
func verifyReplay(t *testing.T, env *Env, p Property, pdir, wd string) int {
	paths, err := corpus.List(pdir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatalf("moecheck: %v", err)
	}
	for _, path := range paths {
		t.Run(corpus.NameOf(path), func(t *testing.T) {
			e, err := corpus.ReadFile(path)
			if err != nil {
				t.Fatalf("moecheck: persisted case: %v", err)
			}
			tr := Trial{Case: e.Case, Poison: gpu.PoisonSignature,
				Origin: Origin{Kind: FromVerify, Path: path, Test: t.Name(), Dir: wd}}
			if len(e.Poisons) > 0 {
				tr.Poison = e.Poisons[0]
			}
			_, failed, err := CheckTrial(context.Background(), env, []Property{p}, tr)
			if err != nil {
				t.Fatalf("moecheck: %s: %v", path, err)
			}
			if failed != nil {
				t.Errorf("moecheck: persisted case %s (%s, poison %s) still fails:\n%s\nreproduce: %s",
					path, e.Case.Config, tr.Poison, Describe(failed), Reproduce(tr, How{}))
			}
		})
	}
	return len(paths)
}

// verifyGenerated runs property p on n generated cases; the first failure is shrunk,
// persisted under pdir and reported with its reproduce line, the rest counted.
func verifyGenerated(t *testing.T, env *Env, p Property, gen GenOptions, seed uint64, n int, pdir, wd string) {
	rep, err := Run(context.Background(), RunConfig{Env: env, Properties: []Property{p}, Gen: gen, Seed: seed, Cases: n, KeepGoing: true})
	if err != nil {
		t.Fatalf("moecheck: %v", err)
	}
	if len(rep.Failures) == 0 {
		return
	}
	f := rep.Failures[0]
	tr, out := f.Trial, f.Failed
	if f.Shrunk != nil && f.Shrunk.Outcome != nil {
		tr, out = f.Shrunk.Trial, f.Shrunk.Outcome
	}
	// the persisted case replays as a sibling of this subtest
	parent := strings.TrimSuffix(t.Name(), "/generated")
	path, err := persist(pdir, tr, out, f.Index, seed)
	msg := fmt.Sprintf("moecheck: case %d of seed %d failed; shrunk to %s\n%s", f.Index, seed, tr.Origin.Spec, Describe(out))
	if err != nil {
		msg += fmt.Sprintf("\ncould not persist the case (%v); reproduce: %s", err, Reproduce(tr, How{}))
	} else {
		rt := Trial{Case: tr.Case, Poison: tr.Poison, Origin: Origin{Kind: FromVerify, Path: path, Test: parent + "/" + corpus.NameOf(path), Dir: wd}}
		msg += fmt.Sprintf("\npersisted: %s (replayed first on the next go test)\nreproduce: %s", path, Reproduce(rt, How{}))
	}
	if more := len(rep.Failures) - 1; more > 0 {
		msg += fmt.Sprintf("\n… and %d more failing case(s) of %d", more, rep.Cases)
	}
	t.Error(msg)
}

// persist writes a failing trial as a corpus file under dir (temporary file + rename),
// named by a hash of its content so the same case is written once.
func persist(dir string, tr Trial, out *Outcome, index int, seed uint64) (string, error) {
	e := &corpus.Entry{Case: tr.Case, Poisons: []gpu.Poison{tr.Poison}, Properties: []string{out.Property},
		Comments: []string{
			fmt.Sprintf("persisted by props.Verify: case %d of seed %d, shrunk", index, seed),
			"property " + out.Property + " failed: " + out.Message,
		}}
	if tr.Origin.Kind == FromSpec {
		e.Comments = append(e.Comments, "spec: "+tr.Origin.Spec.String())
	}
	var buf bytes.Buffer
	e.Name = "x"
	if err := corpus.Format(&buf, e); err != nil {
		return "", err
	}
	h := fnv.New64a()
	h.Write(buf.Bytes())
	e.Name = fmt.Sprintf("fail-%016x", h.Sum64())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, e.Name+corpus.Ext)
	return path, corpus.WriteFile(path, e)
}
