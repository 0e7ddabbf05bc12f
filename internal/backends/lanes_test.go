package backends

import (
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/gpu/simtorch"
)

// TestLanes: which backend names start a worker that serves lanes.
func TestLanes(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, tc := range []struct {
		name, backend string
		want          bool
	}{
		{"lanes/cuda", "cuda", true},
		{"lanes/worker", "worker", true},
		{"lanes/worker-path", "worker:.device/moecheck-worker -backend cuda -device 1", true},
		{"lanes/other-worker", "worker:./my-worker --fast", false},
		{"lanes/sim", "sim", false},
		{"lanes/sim-torch", "sim-torch", false},
		{"lanes/torch", "torch:ledger:x", false},
		{"lanes/bad-name", "nonsense", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Lanes(tc.backend, "", getenv); got != tc.want {
				t.Fatalf("Lanes(%q) = %v, want %v", tc.backend, got, tc.want)
			}
		})
	}
}

// TestOpenLanesInProcess: in-process backends get an independent instance per lane; bad
// counts and names are errors naming the problem.
func TestOpenLanesInProcess(t *testing.T) {
	for _, tc := range []struct{ name, backend string }{{"open-lanes/sim", "sim"}, {"open-lanes/sim-torch", simtorch.Name}} {
		t.Run(tc.name, func(t *testing.T) {
			bs, err := OpenLanes(tc.backend, Options{}, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(bs) != 3 || bs[0] == bs[1] || bs[1] == bs[2] {
				t.Fatalf("got %d backends %v, want 3 distinct instances", len(bs), bs)
			}
			if _, ok := bs[0].(*sim.Backend); ok != (tc.backend == "sim") {
				t.Fatalf("backend type %T for %q", bs[0], tc.backend)
			}
			for _, b := range bs {
				b.Close()
			}
		})
	}
	for _, tc := range []struct {
		name, backend string
		n             int
		want          string
	}{
		{"open-lanes/zero", "sim", 0, "0 lanes: want between 1 and"},
		{"open-lanes/huge", "sim", 100000, "want between 1 and"},
		{"open-lanes/bad-name", "nonsense", 2, "unknown backend"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := OpenLanes(tc.backend, Options{}, tc.n); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
