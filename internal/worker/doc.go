// Package worker runs a gpu.Backend in a separate process and speaks to it over a small
// versioned protocol on the process's stdin and stdout, so that a device fault, a hang or an
// out-of-memory costs one case and not the run.
//
// New launches a worker command line (cmd/moecheck-worker: `-backend cuda` on a GPU
// machine, `-backend sim` anywhere) and returns a gpu.Backend whose Run sends the case and
// waits for the result. When the worker dies mid-case (a kernel fault: the CUDA context is
// lost for good), answers that it crashed, runs past the per-case timeout (it is killed), or
// runs out of device memory, Run returns a *gpu.CaseError (Crashed, TimedOut, OutOfMemory)
// with what the worker said, the worker is restarted on the next Run, and the run goes on.
//
// Serve is the worker side: it answers requests with any gpu.Backend; a backend that runs
// cases as their storage bits (rawcase.Runner, gpu/cuda) gets the request's bits, validated
// on their bits, and its result's bits go to the wire unconverted (bits.go). A client lane
// encodes a case once for its runs in a row (reqcache.go) and, to a worker whose hello
// declares same_case, sends the runs after the first without the case's tensors.
//
// A client lane implements gpu.Forgetter: at the start of every trial (package props) it
// asks a worker whose hello declares forget to drop what the lane's backend carries from the
// cases before (forget.go), so that verdicts do not depend on which cases the lane ran first.
//
// Results of real shapes are gigabytes: the worker writes them chunk by chunk (WriteResult)
// and the client decodes them into the Result's tensors as they arrive, neither side holding
// the frame's payload (stream.go); the bytes on the wire are EncodeResult's.
//
// Lanes: NewLanes starts one worker process that serves several lanes (one CUDA context for
// the jobs of a device); each lane is its own protocol stream, lane 0 on stdin/stdout, lane
// k on inherited pipes (LaneFDs, LanesEnv; OpenLanes and ServeLanes on the worker side). A
// case whose lane meets a failure of the shared process is re-run alone before it is blamed.
//
// The protocol (version 1), documented for other implementations in docs/gpu.md: frames of
// a little-endian uint32 header length, a JSON header, a little-endian uint64 payload length
// and the payload (raw little-endian tensor bytes; floating-point tensors in their storage
// dtype, so NaN payloads survive). The worker speaks first (hello, with the version); the
// client then sends run requests, one at a time, and a bye.
//
// This package never imports gorgonia.org/cu: it is in the default build and its tests run
// without a GPU.
package worker
