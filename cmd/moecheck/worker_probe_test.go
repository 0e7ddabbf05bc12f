package main

import (
	"strings"
	"testing"
)

// TestWorkerProbeDroppedEverything: a Python worker whose start-up probe drops every dtype ×
// variant (the target raises on every case) is an internal error of the worker (exit 3), and
// the error carries the worker's stderr, where the probe names each dropped combination and
// why. Before, the CLI said only "--dtype: the backend supports none of these dtypes (it
// supports )" (exit 2), which is how transformers:eager failed to start on the GPU machine.
func TestWorkerProbeDroppedEverything(t *testing.T) {
	py := torchPython(t)
	for _, dt := range []string{"fp32", ""} {
		t.Run("probe/dtype="+dt, func(t *testing.T) {
			args := []string{"check", "--cases", "1", "--backend", "torch:callable:moecheck.testing:raises"}
			if dt != "" {
				args = append(args, "--dtype", dt)
			}
			code, out, errs := run(t, map[string]string{"MOECHECK_PYTHON": py}, args...)
			for _, want := range []string{"probe dropped every combination", "worker stderr",
				"dropped: ValueError: moecheck.testing.raises: raised on purpose"} {
				if code != exitInternal || !strings.Contains(errs, want) {
					t.Fatalf("exit %d, want 3 naming %q:\n%s\n%s", code, want, out, errs)
				}
			}
		})
	}
}
