package oracle

import "github.com/moecheck/moecheck/internal/f64gemm"

// dgemmNT sets C = A·Bᵀ (A m×k, B n×k, C m×n, all row-major, contiguous) in float64
// (internal/f64gemm: gonum, or OpenBLAS with the build tag openblas).
//
// Any summation order is sound here: reduceAcc bounds the float64 evaluation of every
// product it takes from dgemmNT by (k+2)·2⁻⁵²·M⁺, which holds for every order of the k
// additions and for fused multiply-adds (Higham, Accuracy and Stability §3.1: γ_k·Σ|a||b|
// for any order), so verdicts do not depend on which implementation computed C;
// TestDgemmNT checks it against a plain loop within that bound in both builds.
func dgemmNT(m, n, k int, A, B, C []float64) { f64gemm.NT(m, n, k, A, B, C) }
