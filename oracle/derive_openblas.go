//go:build openblas

package oracle

// rowExactGEMM: OpenBLAS's blocked kernels (packed panels, edge kernels for the rows left
// over) give no guarantee that an element's bits do not depend on its row's position, so
// the openblas build derives no verdict (derive.go) and judges every unit.
const rowExactGEMM = false
