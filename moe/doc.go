// Package moe is moecheck's problem model: the configuration of one Mixture-of-Experts layer
// (tokens, hidden and intermediate sizes, experts, top-k, expert parallelism, activation,
// weight layout, dtype), its routing with expert-parallel sentinels, the tensors of a case,
// the dtypes' rounding at bit level, and deterministic data generation from a seed.
//
// Everything downstream (the float64 reference, the paths under test, the oracle) consumes a
// *Case built and validated here. A Case holds float64 values that are exactly representable
// in the case's dtype, so every path starts from bit-identical inputs.
//
// Conventions (see docs/path.md for the full pipeline):
//   - slot s = t*K + k is token t's k-th routing choice; S = T*K slots in all;
//   - local expert ids are in [0, E]; the id E is the sentinel ("owned by another rank");
//   - a sentinel slot contributes nothing to any output or gradient, whatever its weight;
//   - tensors are flat row-major []float64; the weight layout decides the order of the last
//     two axes (Standard: W1 E×2I×H, W2 E×H×I; Transposed: W1 E×H×2I, W2 E×I×H).
//
// No function in this package panics on user input: malformed sizes, ids, weights and
// tensor lengths are reported as errors that name the problem and the limit.
package moe
