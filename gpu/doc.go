// Package gpu defines what a path under test is to moecheck: the Backend interface, the
// options of one run (poison policy, faults, stage capture), the Result it returns, the
// poison fills of uninitialized memory, and the catalog of faults that reproduce known bug
// classes of grouped-GEMM MoE kernels.
//
// Implementations: gpu/sim (a pure-Go model of the GPU path, the default, runs anywhere),
// gpu/cuda (the real CUDA path, build tag cuda, in a worker process), and any user type that
// satisfies Backend (see the example in package props).
//
// The path every backend implements, stage by stage, with its rounding points and which rows
// each kernel writes, is specified in docs/path.md.
package gpu
