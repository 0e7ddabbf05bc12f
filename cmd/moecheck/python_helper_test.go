package main

import (
	"testing"

	"github.com/moecheck/moecheck/internal/torchtest"
)

// torchPython is torchtest.Python: the PyTorch worker's interpreter, or the test skipped
// (failed under MOECHECK_REQUIRE_PYTHON=1).
func torchPython(t *testing.T) string { return torchtest.Python(t) }
