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

// TestTorchJobs: the default jobs of a torch:… backend — 4 per core, between TorchLanes and
// 64 per device — for the machines it was measured on and the edges.
func TestTorchJobs(t *testing.T) {
	for _, tc := range []struct {
		name           string
		cores, devices int
		want           int
	}{
		{"torch-jobs/h200-host", 16, 1, 64},
		{"torch-jobs/h200-host-no-devices-flag", 16, 0, 64},
		{"torch-jobs/two-cores", 2, 0, 8},
		{"torch-jobs/one-core", 1, 0, TorchLanes},
		{"torch-jobs/zero-cores-reported", 0, 0, TorchLanes},
		{"torch-jobs/big-host-capped", 128, 1, 64},
		{"torch-jobs/eight-gpus", 128, 8, 512},
		{"torch-jobs/eight-gpus-few-cores", 16, 8, 64},
		{"torch-jobs/eight-gpus-fewer-cores", 8, 8, 8 * TorchLanes},
	} {
		if got := TorchJobs(tc.cores, tc.devices); got != tc.want {
			t.Errorf("%s: TorchJobs(%d, %d) = %d, want %d", tc.name, tc.cores, tc.devices, got, tc.want)
		}
	}
}
