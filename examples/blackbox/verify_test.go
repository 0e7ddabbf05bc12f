package blackbox_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// brokenTest is a user's module test of a deliberately broken backend: the example backend
// with one output element off by one.
const brokenTest = `package brokenbackend

import (
	"context"
	"testing"

	"github.com/moecheck/moecheck/examples/blackbox"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

type broken struct{ *blackbox.Backend }

func (b broken) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	r, err := b.Backend.Run(ctx, c, o)
	if err == nil && len(r.Y) > 0 {
		r.Y[len(r.Y)-1] += 1
	}
	return r, err
}

func TestBroken(t *testing.T) {
	m, err := props.ByName("matches")
	if err != nil {
		t.Fatal(err)
	}
	props.Verify(t, broken{blackbox.New()}, props.VerifyOptions{NoStages: true, Cases: 5, Properties: []props.Property{m}})
}
`

// TestVerifyPersistsAndReproduces runs Verify on a broken backend in a separate module that
// depends on moecheck through a replace directive (as README.md describes): the failure is
// persisted under the test's testdata folder, the next go test replays it before the
// generated cases, and the printed reproduce line runs and fails the same way.
func TestVerifyPersistsAndReproduces(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a separate module three times")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// the module: moecheck by a replace directive, its requirements copied so that the
	// build needs nothing beyond the module cache
	rootMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	mod := "module example.com/brokenbackend\n\ngo 1.26.0\n\nrequire github.com/moecheck/moecheck v0.0.0\n\n"
	for _, m := range regexp.MustCompile(`(?s)require \(.*?\)`).FindAllString(string(rootMod), -1) {
		mod += m + "\n\n"
	}
	mod += "replace github.com/moecheck/moecheck => " + root + "\n"
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"go.mod": mod, "go.sum": string(sum), "broken_test.go": brokenTest} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	run := func(name string, args ...string) (string, bool) {
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		return string(out), err == nil
	}
	// 1. the failure is found, shrunk, persisted and reported with a reproduce line
	out, ok := run(goBin, "test", "-count=1", ".")
	if ok {
		t.Fatalf("Verify passed a broken backend:\n%s", out)
	}
	persisted, err := filepath.Glob(filepath.Join(dir, "testdata", "moecheck", "TestBroken", "matches", "fail-*.case"))
	if err != nil || len(persisted) != 1 {
		t.Fatalf("persisted cases %v (%v), want one:\n%s", persisted, err, out)
	}
	failLine := regexp.MustCompile(`property matches failed: [^\n]*`).FindString(out)
	repro := regexp.MustCompile(`reproduce: ([^\n]*)`).FindStringSubmatch(out)
	if failLine == "" || repro == nil || !strings.Contains(repro[1], "go test -run") {
		t.Fatalf("no failure or go test reproduce line in:\n%s", out)
	}
	if strings.Count(out, "property matches failed") != 1 {
		t.Errorf("the failure is reported more than once (want one line and a count):\n%s", out)
	}
	// 2. the next go test replays the persisted case first
	out, ok = run(goBin, "test", "-count=1", "-v", ".")
	name := strings.TrimSuffix(filepath.Base(persisted[0]), ".case")
	replay := strings.Index(out, "=== RUN   TestBroken/matches/"+name)
	gen := strings.Index(out, "=== RUN   TestBroken/matches/generated")
	if ok || replay < 0 || gen < 0 || replay > gen {
		t.Fatalf("persisted case not replayed before the generated ones (replay at %d, generated at %d):\n%s", replay, gen, out)
	}
	// 3. the printed reproduce line runs that case alone and fails the same way
	out, ok = run("sh", "-c", repro[1]+" -count=1 -v")
	if ok || !strings.Contains(out, failLine) || strings.Contains(out, "TestBroken/matches/generated") {
		t.Fatalf("reproduce line %q: want the same failure (%q) from the persisted case alone, got:\n%s", repro[1], failLine, out)
	}
}
