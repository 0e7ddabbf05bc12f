//go:build !openblas

package oracle

// rowExactGEMM reports whether every float64 product of the oracle (internal/f64gemm)
// computes element (i, j) from row i of A and row j of B alone, the same way wherever row i
// sits: gonum's Dgemm sums, for every element, the same k-blocks in the same order for the
// same m, n and k (dgemmSerial's DotUnitary over all of k, or dgemmParallel's blocks of 64
// along k, chosen by m and n), and DotUnitary's lanes depend only on the offset along k.
// The derived verdict (derive.go) rests on it.
const rowExactGEMM = true
