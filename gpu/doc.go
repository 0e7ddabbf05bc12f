// Package gpu is the backend contract: what a path under test is to moecheck. A kernel author
// implements Backend (one Run per case, forward and backward), honours RunOptions (the poison
// policy with which to fill every buffer taken from uninitialized memory, and whether to
// report stage intermediates), and returns a Result, whose tensors Result.Tensor reads by
// their typed identity (moe.Tensor). A case the device could not finish is a *CaseError.
//
// That is all a backend sees: the harness's fault catalog (internal/fault, for mutation
// testing of moecheck's own backends) and its poison internals (internal/poison: signature
// NaNs naming each Buffer) are not part of the contract.
//
// Implementations: gpu/sim (a pure-Go model of the GPU path, the default, runs anywhere),
// gpu/cuda (the real CUDA path, build tag cuda, in a worker process), and any user type that
// satisfies Backend (examples/blackbox, verified with props.Verify).
//
// The path every backend implements, stage by stage, with its rounding points and which rows
// each kernel writes, is specified in docs/path.md.
package gpu
