package backends

import (
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/gpu/simtorch"
	"github.com/moecheck/moecheck/internal/worker"
)

// TestLanes: which backend names start a worker that serves lanes, and how many jobs share
// one by default (the PyTorch worker serves lanes too: python/moecheck/worker.py).
func TestLanes(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, tc := range []struct {
		name, backend string
		want          bool
		lanes         int
	}{
		{"lanes/cuda", "cuda", true, worker.MaxLanes},
		{"lanes/worker", "worker", true, worker.MaxLanes},
		{"lanes/worker-path", "worker:.device/moecheck-worker -backend cuda -device 1", true, worker.MaxLanes},
		{"lanes/other-worker", "worker:./my-worker --fast", false, 1},
		{"lanes/sim", "sim", false, 1},
		{"lanes/sim-torch", "sim-torch", false, 1},
		{"lanes/torch", "torch:ledger:x", true, TorchLanes},
		{"lanes/bad-name", "nonsense", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Lanes(tc.backend, "", getenv); got != tc.want {
				t.Fatalf("Lanes(%q) = %v, want %v", tc.backend, got, tc.want)
			}
			if got := DefaultLanes(tc.backend, "", getenv); got != tc.lanes {
				t.Fatalf("DefaultLanes(%q) = %d, want %d", tc.backend, got, tc.lanes)
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
