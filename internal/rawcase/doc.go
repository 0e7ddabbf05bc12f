// Package rawcase carries a case and a result as the storage bits they travel in, between
// the worker protocol (internal/worker) and a backend whose device holds the same bits
// (gpu/cuda): the request's tensors are validated on their bits (Validate, with the checks
// and messages of moe.Case.Validate), uploaded as they came, and the downloaded result bits
// are written back to the wire as they are, without the float64 and float32 round trips of
// the gpu.Backend interface (issue 14).
//
// A value of a dtype is exactly one storage pattern's value, so a case decoded from its bits
// always holds dtype values: on bits, Validate only has to refuse non-finite data where the
// case does not allow it, and routing that moe refuses (it decodes the T·K routing values and
// runs moe's own checks on them).
//
// The package is in the default build: it never imports gorgonia.org/cu.
package rawcase
