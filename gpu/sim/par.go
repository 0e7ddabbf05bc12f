package sim

import "github.com/moecheck/moecheck/internal/par"

// split, minParWork, newSplit and parFor are internal/par's, under the names this package's
// loops use.
type split = par.Split

const minParWork = par.MinWork

func newSplit(workers, minWork int) split { return par.New(workers, minWork) }

func parFor[T any](sp split, n, cost int, arg T, body func(T, int, int)) {
	par.For(sp, n, cost, arg, body)
}

// clear zeroes v, split over st.par goroutines for large v.
func (st *state) clear(v []float32) {
	parFor(st.par, len(v), 1, v, func(v []float32, lo, hi int) { clear(v[lo:hi]) })
}

// copy copies src into dst (same length), split over st.par goroutines for large src.
func (st *state) copy(dst, src []float32) {
	parFor(st.par, len(src), 1, [2][]float32{dst, src}, func(a [2][]float32, lo, hi int) { copy(a[0][lo:hi], a[1][lo:hi]) })
}
