package torchtest

import (
	"os"
	"os/exec"
	"testing"
)

// Python returns the interpreter of the PyTorch worker ($MOECHECK_PYTHON, default python3)
// if it can import torch; otherwise it skips the test, or fails it when
// MOECHECK_REQUIRE_PYTHON=1 (CI, where those tests must run).
func Python(t testing.TB) string {
	t.Helper()
	py := os.Getenv("MOECHECK_PYTHON")
	if py == "" {
		py = "python3"
	}
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		if os.Getenv("MOECHECK_REQUIRE_PYTHON") == "1" {
			t.Fatalf("%s cannot import torch (%v) and MOECHECK_REQUIRE_PYTHON=1", py, err)
		}
		t.Skipf("no Python with torch (%s: %v); set MOECHECK_PYTHON", py, err)
	}
	return py
}
