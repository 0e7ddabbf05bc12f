// Package f64gemm is the float64 GEMM of the reference and the oracle: gonum's pure-Go Dgemm
// in the default build, OpenBLAS's cblas_dgemm (cgo, libopenblas-dev) with the build tag
// openblas (make build-openblas), several times faster on real shapes.
//
// Any summation order is sound for both callers: each bounds the float64 evaluation of its
// products for every order of the k additions and for fused multiply-adds (Higham, Accuracy
// and Stability §3.1), so verdicts do not depend on which implementation computed C; only the
// last bits of centers and radii differ. OpenBLAS's bits would also depend on its thread count
// (one thread and several give different bits above about 2^18 multiply-adds, measured with
// OpenBLAS 0.3.21), so the openblas build runs it on one thread whatever OPENBLAS_NUM_THREADS
// says (its callers split over goroutines: openblas.go): results are then bitwise the same
// on any core count for a given OpenBLAS kernel (CPU family), not across CPU families as the
// default build's are. Products below MinWork multiply-adds use gonum in both builds.
package f64gemm
