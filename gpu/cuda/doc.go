//go:build cuda

// Package cuda is the real GPU path under test: the grouped-GEMM MoE layer of docs/path.md
// in CUDA kernels (gpu/cuda/kernels/*.cu, compiled to PTX by `make ptx` and embedded), driven
// through gorgonia.org/cu.
//
// Build tag cuda only: importing gorgonia.org/cu ends a process that has no GPU (its init
// calls cuInit and exits). Run it in a worker process (cmd/moecheck-worker, client in
// internal/worker) so that a kernel fault, which loses the CUDA context for good, costs one case.
//
// Every CUDA call runs on one goroutine locked to its OS thread (the context's thread).
// Every buffer the path takes uninitialized is poisoned on the device per gpu.Poison
// (signature NaNs truncated to the dtype, Stale reusing a pool of allocations across runs),
// and every device allocation has 256-byte guard zones before and after it, checked after
// each stage: an out-of-bounds write is reported as a crash CaseError naming the stage and
// the buffer. Every fault of fault.Catalog() is a kernel flag (see internal/fault and docs/gpu.md).
package cuda
