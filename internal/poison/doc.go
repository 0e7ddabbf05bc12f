// Package poison holds the harness's poison internals: the signature NaN that names a device
// buffer (NaN, Of), the fill values of every policy (Value) and the per-element random draw
// (SplitMix64) with which moecheck's own backends (gpu/sim, and gpu/cuda's kernels, which
// implement the same formulas) fill their uninitialized buffers, and with which the oracle
// recognizes a surviving signature. The policy itself (gpu.Poison) is part of the backend
// contract; how moecheck realizes it is not.
package poison
