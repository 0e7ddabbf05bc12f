package props

import (
	"context"
	"testing"

	"github.com/moecheck/moecheck/gpu"
)

// VerifyOptions tune Verify. The zero value runs every property on 200 generated cases from
// seed 1 with default generator bounds and shrinking.
type VerifyOptions struct {
	Cases      int // generated cases (default 200; -short: 40)
	Seed       uint64
	Gen        GenOptions
	Properties []Property
	NoStages   bool // the backend reports no stages: end-to-end checks only
	Faults     gpu.FaultSet
}

// Verify is the conformance entry point, in the style of gonum's testblas: a user's module
// verifies its own Backend with one line,
//
//	func TestMyBackend(t *testing.T) { props.Verify(t, mybackend.New(), props.VerifyOptions{}) }
//
// It runs the property suite on generated cases and reports each failure with its shrunk
// spec and a one-line reproduce command.
func Verify(t testing.TB, b gpu.Backend, o VerifyOptions) {
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
	env := &Env{Backend: b, Faults: o.Faults, NoStages: o.NoStages}
	rep, err := Run(context.Background(), RunConfig{Env: env, Properties: o.Properties, Gen: o.Gen, Seed: seed, Cases: n, KeepGoing: true})
	if err != nil {
		t.Fatalf("moecheck: %v", err)
	}
	for _, f := range rep.Failures {
		s, out := f.Spec, f.Failed
		if f.Shrunk != nil && f.Shrunk.Outcome != nil {
			s, out = f.Shrunk.Spec, f.Shrunk.Outcome
		}
		t.Errorf("moecheck case %d: %s\nshrunk to: %s\nreproduce: %s", f.Index, describe(out), s.normalized(), Repro(b.Name(), env, s))
	}
	t.Logf("moecheck: %d cases, %d failures, %v", rep.Cases, len(rep.Failures), rep.Elapsed)
}
