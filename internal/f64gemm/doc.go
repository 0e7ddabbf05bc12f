// Package f64gemm is the float64 GEMM of the reference and the oracle: gonum's pure-Go Dgemm
// in the default build, OpenBLAS's cblas_dgemm (cgo, libopenblas-dev) with the build tag
// openblas (make build-openblas), several times faster on real shapes.
//
// Any summation order is sound for both callers: each bounds the float64 evaluation of its
// products for every order of the k additions and for fused multiply-adds (Higham, Accuracy
// and Stability §3.1), so verdicts do not depend on which implementation computed C; only the
// last bits of centers and radii differ. With OpenBLAS they also depend on its thread count
// (one thread and several give different bits above about 2^18 multiply-adds, measured with
// OpenBLAS 0.3.21; concurrent calls keep the serial call's bits), so results are bitwise
// reproducible for a given OPENBLAS_NUM_THREADS and core count, not across machines as the
// default build's are. Products below MinWork multiply-adds use gonum in both builds.
package f64gemm
