// Package simtorch is a second CPU model of the path (backend name "sim-torch"): the path as
// PyTorch eager ops and torch._grouped_mm compute it in transformers' grouped_mm experts path,
// so that the torch contract (package contract) is tested on every machine, without a GPU.
//
// It differs from gpu/sim (which follows docs/path.md exactly) where PyTorch makes other
// legal choices: the bias is added after the grouped GEMM's output is rounded; the activation
// runs as separate eager ops, each rounded to the dtype (F.silu(g), then · up; gpt-oss's
// clamp, ·1.702, sigmoid, ·, +1, ·) with autograd's backward formulas; the routing-weight
// gradient sums dtype-rounded products in a tree; the K-slot combine (index_add_), the
// gather's backward (index_put_ with accumulate) and the bias gradients add in the dtype, one
// rounding per add, in an order that changes from run to run (as atomics do); and each
// GEMM's accumulation order depends on the group's number of rows (as a GEMM library picks
// its tiling, split-K included). It declares contract.Torch(): it passes under torch and any,
// and fails under exact.
//
// It models numerics only: buffers are written in full (no poison reaches the results) and
// it reproduces no catalog fault (Run returns an error when faults are asked for). Stages
// are not reported (a black-box backend, like a PyTorch worker).
package simtorch
