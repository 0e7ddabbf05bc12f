// Command moecheck-worker serves MoE cases to a moecheck client (internal/worker) over the
// worker protocol on stdin/stdout (docs/gpu.md), with one backend:
//
//	moecheck-worker [-backend cuda|sim] [-device N] [-lanes N] [-stage-guard-checks] [-stage-sync]
//	  [-crash-shape T,H,I,E,K]
//
// With -lanes N (or MOECHECK_WORKER_LANES=N, set by the client) it serves N lanes, each its
// own backend instance (cuda: one shared context, a stream per lane), lane 0 on stdin/stdout
// and lane k on descriptors 2k+1 and 2k+2 (docs/gpu.md, Lanes).
//
// and has two modes for the GPU machine:
//
//	moecheck-worker -selftest [-quick]   judge the backend with the oracle on a matrix of cases
//	                                     (dtypes, activations, layouts, EP, poisons) and on
//	                                     every fault, which must change the result; with
//	                                     -lanes N also run the cases on N lanes at once, bitwise
//	                                     equal to one lane alone
//	moecheck-worker -sanitize            run a few small cases once (under compute-sanitizer),
//	  [-sanitize-corpus DIR,...]         and every case of these corpus directories
//	moecheck-worker -client-check        run this binary as a worker through the internal/worker
//	                                     client: case, crash fault, case (one CaseError); with
//	                                     -lanes N the crash case on lane 1 while the other lanes
//	                                     run a normal case: only the crash case is blamed
//	moecheck-worker -bench [-reps N]     time the bf16 GEMM and the full layer forward+backward
//	                                     at Qwen3-30B-A3B rank shape (cuda only)
//
// The cuda backend exists only in a binary built with -tags cuda (make worker). Exit status:
// 0 fine, 1 self-test failures, 2 usage, 3 internal or device error (a crashed backend too:
// the client restarts the worker).
package main
