// Package f64bits compares float64 slices bit for bit (NaN payloads and the sign of zero
// included), as a memory compare: the cached-request check of the worker client and the
// expert-parallel split's row test (internal/epsplit) compare tensors of up to hundreds of
// millions of values this way.
package f64bits
