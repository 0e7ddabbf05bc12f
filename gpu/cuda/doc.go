// Package cuda is the real GPU path under test: the grouped-GEMM MoE layer of docs/path.md
// in CUDA kernels (gpu/cuda/kernels/*.cu, compiled to PTX by `make ptx` and embedded), driven
// through gorgonia.org/cu.
//
// Build tag cuda for everything that imports gorgonia.org/cu, which ends a process that
// has no GPU (its init calls cuInit and exits); stage.go (the staging layout and descriptor
// encoding of the fused prepare kernel) is pure Go and tested in the default build. Run the path in a worker process
// (cmd/moecheck-worker, client in internal/worker) so that a kernel fault, which loses the CUDA context for good, costs one case.
//
// NewLanes returns lanes that share the device's primary context and the kernels (loaded
// once); each lane runs its CUDA calls on its own goroutine locked to its OS thread, on its
// own non-blocking stream, with its own buffer pool, so the lanes of one worker process run
// cases concurrently on one GPU (New is one lane). Every buffer the path takes uninitialized
// is poisoned on the device per gpu.Poison (signature NaNs truncated to the dtype, Stale
// reusing the lane's pool of allocations across runs), and every device allocation has
// 256-byte guard zones before and after it, checked at the end of every run (after every stage
// too with Options.StageGuardChecks): an out-of-bounds write is reported as a crash CaseError
// naming the buffer and, through a re-run with per-stage checks, the stage. A run is one
// upload, one fused prepare launch, the stages' launches, one check-and-pack launch, one
// download and one synchronization (docs/gpu.md, Staging). Every fault of fault.Catalog() is
// a kernel flag (see internal/fault and docs/gpu.md).
package cuda
