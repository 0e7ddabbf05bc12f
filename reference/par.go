package reference

import "github.com/moecheck/moecheck/internal/par"

// split, minParWork, newSplit and parFor are internal/par's, under the names this package's
// loops use.
type split = par.Split

const minParWork = par.MinWork

func newSplit(workers, minWork int) split { return par.New(workers, minWork) }

func parFor[T any](sp split, n, cost int, arg T, body func(T, int, int)) {
	par.For(sp, n, cost, arg, body)
}
