// Package sim is the Go model of the GPU path, moecheck's default backend.
//
// It executes docs/path.md stage by stage, forward and backward, the way the CUDA kernels do:
// every intermediate is a float32 buffer holding values of the case's dtype (bf16 and fp16
// values stored exactly in float32); every buffer gpu.Buffers() names is taken from a pool kept
// by the Backend and poisoned with poison.Fill before the path runs (PoisonStale keeps what the
// previous Run left); a stage writes exactly the rows the spec says it writes, so an
// unwritten element keeps its poison and a missing mask shows up in the result.
//
// Numerics (docs/path.md "fp32" and "round_d"):
//   - every GEMM accumulates the fp32 products of dtype values in fp32, sequentially in the
//     reduction index (products are rounded to float32 before the add, so no platform fuses
//     them into an FMA), adds the bias to the fp32 accumulator, and rounds once with
//     moe.DType.RoundFloat32; on amd64 with AVX2 the row update runs eight columns at a time
//     in assembly (kernel_amd64.s; the build tag purego leaves it out), each column with the
//     Go loop's operations in its order and the same operand first in each, so the results
//     are the Go loop's bits, NaN payloads included (TestVecKernelsBitwise; the normal
//     build's, where two NaNs meet: the race detector's instrumentation reorders the loop's
//     operands); on subnormal data, whose fp32 multiplies take a microcode assist on x86,
//     a thread switches to a kernel computing each product as float32(float64(a)·float64(b)),
//     bitwise the same (gemvSel: the choice is speed only), and the dtype rounding runs
//     eight values at a time too (roundAll);
//   - elementwise stages (activation forward and backward, routing-weight multiply,
//     d_h2) evaluate in float32, left to right as docs/path.md writes them; exp is
//     "expf" = float32(math.Exp(float64(x))), correctly rounded in all but rare ties, well
//     within the spec's 2-ulp allowance;
//   - the combine (step 9), the scatter-add (step 18), the routing-weight gradient (step 11)
//     and the bias gradients sum in fp32 from +0 in index order, then round once.
//
// With RunFaults the Backend reproduces every fault of the harness catalog (internal/fault); see
// faults.go for where each one acts. A Backend serializes its Runs (the pool is shared);
// use one Backend per goroutine for parallel runs.
//
// Within a Run, every stage of a large case is split over GOMAXPROCS goroutines (par.go):
// the GEMMs by output rows (keeping the pairs of rows the two-row kernel forms), the weight
// gradients by pairs of dW rows, the bias gradients by columns, the elementwise stages, the
// combine and the scatter-add by rows or tokens, the conversion, transposes and poison fills
// by ranges. Each output element is still computed by one goroutine with the same operations
// in the same order, so results are bitwise those of a single goroutine (TestParallelBitwise),
// and no buffer is copied per goroutine: the working set is the same as a serial Run's. A
// stage below about 32k element operations (minParWork) runs on the calling goroutine, so
// small cases take no goroutine overhead and allocate nothing more.
//
// Between Runs the Backend keeps what costs a property run most without changing a result:
// the inputs it converted (a Run whose input tensor is bitwise the one converted last skips
// the conversion; the comparison, never the slice's identity, decides: input.go), and stage
// buffers a caller hands back with Recycle (a Run with stages lends its buffers to its Result,
// result.go; the next Run takes the recycled ones instead of new zeroed memory). Both are
// exercised against a Backend without them by TestReuseSameAsWithout.
//
// It also keeps a stage memo (memo.go): per stage — the four GEMMs, the two weight
// gradients, the activation and its backward — the inputs and outputs of its last
// computation. A stage whose inputs are bitwise those (every byte it reads: the rows it maps,
// the row→expert map that also fixes the two-row kernel's pairs, the weights by their
// conversion generation, bias and groups, the expert ranges, the shape, dtype and the fault
// switches acting on it) copies the outputs instead of computing: the runs of one case under
// every poison policy read the same GEMM inputs, as poison reaches only rows no GEMM of a
// correct path reads. A fault that makes a stage read other bytes changes its key, so it is
// computed; entries are stored only by a rerun (the case's X at the previous Run's address)
// or the first Run after Forget, hold at most maxMemo (2^21) elements together, and are
// dropped by Forget. TestMemoSameAsWithout runs it against a Backend without it under every
// poison policy and fault set, with each part of the key changed between Runs.
package sim
