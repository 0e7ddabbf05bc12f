package blackbox_test

import (
	"testing"

	"github.com/moecheck/moecheck/examples/blackbox"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/props"
)

// TestConformance is the one line a user adds to their module.
func TestConformance(t *testing.T) {
	props.Verify(t, blackbox.New(), props.VerifyOptions{NoStages: true})
}

// TestCatchesLeak shows the same entry point failing a broken path: with leak 2 (the
// gathered-input mask missing) switched on, Verify must report failures. Run through a
// recording testing.TB so the expected failure does not fail this test.
func TestCatchesLeak(t *testing.T) {
	rec := &recorder{TB: t}
	props.Verify(rec, blackbox.New(), props.VerifyOptions{NoStages: true, Cases: 50, Faults: gpu.Faults(gpu.NoMaskUpDgrad)})
	if rec.errors == 0 {
		t.Fatal("Verify passed a backend with the no-mask-up-dgrad leak")
	}
	t.Logf("Verify reported %d failing case(s); first:\n%s", rec.errors, rec.first)
}

type recorder struct {
	testing.TB
	errors int
	first  string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors++
	if r.first == "" {
		r.first = sprintf(format, args...)
	}
}

func (r *recorder) Helper() {}
