// Package torchtest finds the Python interpreter the tests that drive the PyTorch worker use
// (python/moecheck). Test helpers only: no package outside tests imports it.
package torchtest
