package sim

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// minParWork is the work, in element operations (a multiply-add, a conversion, a copied
// value), below which a stage runs on the calling goroutine alone. Starting and joining a
// goroutine costs about a microsecond; 1<<15 operations take tens of microseconds, so a
// stage below it gains nothing from splitting (BenchmarkRun's small shapes stay serial;
// BenchmarkRunPar measures the threshold's effect).
const minParWork = 1 << 15

// split says how a Run's stages may split their loops: over up to workers goroutines, in
// ranges of at least minWork element operations.
type split struct {
	workers, minWork int
}

// newSplit resolves the Backend's settings: workers 0 means runtime.GOMAXPROCS(0), minWork
// 0 means minParWork.
func newSplit(workers, minWork int) split {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if minWork <= 0 {
		minWork = minParWork
	}
	return split{workers: workers, minWork: minWork}
}

// parFor calls body(arg, lo, hi) on disjoint ranges [lo, hi) covering [0, n), on up to
// sp.workers goroutines. cost is the work of one index (element operations); the ranges hold
// enough indices to reach sp.minWork each (at least one index), and idle goroutines take the
// next range (dynamic scheduling, so uneven indices such as real and sentinel-tail rows
// balance). With one worker, or when the whole loop is below two ranges' worth of work,
// body(arg, 0, n) runs on the calling goroutine and nothing is allocated (body should be a
// function or method expression, not a closure, for that).
//
// Every output element of the sim is computed by exactly one body call, with the same
// operations in the same order whatever the split, so results are bitwise independent of it.
func parFor[T any](sp split, n, cost int, arg T, body func(T, int, int)) {
	if n <= 0 {
		return
	}
	grain := max(1, sp.minWork/max(cost, 1))
	chunks := (n + grain - 1) / grain
	if sp.workers <= 1 || chunks < 2 {
		body(arg, 0, n)
		return
	}
	parRun(min(sp.workers, chunks), n, grain, chunks, arg, body)
}

// parRun is parFor's split: g goroutines (the caller's one of them) take ranges of grain
// indices in turn.
func parRun[T any](g, n, grain, chunks int, arg T, body func(T, int, int)) {
	var next atomic.Int64
	run := func() {
		for {
			c := int(next.Add(1)) - 1
			if c >= chunks {
				return
			}
			lo := c * grain
			body(arg, lo, min(lo+grain, n))
		}
	}
	var wg sync.WaitGroup
	wg.Add(g - 1)
	for range g - 1 {
		go func() {
			defer wg.Done()
			run()
		}()
	}
	run()
	wg.Wait()
}

// clear zeroes v, split over st.par goroutines for large v.
func (st *state) clear(v []float32) {
	parFor(st.par, len(v), 1, v, func(v []float32, lo, hi int) { clear(v[lo:hi]) })
}

// copy copies src into dst (same length), split over st.par goroutines for large src.
func (st *state) copy(dst, src []float32) {
	parFor(st.par, len(src), 1, [2][]float32{dst, src}, func(a [2][]float32, lo, hi int) { copy(a[0][lo:hi], a[1][lo:hi]) })
}
