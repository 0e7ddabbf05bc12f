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

// parFor calls body on disjoint ranges [lo, hi) covering [0, n), on up to sp.workers
// goroutines. cost is the work of one index (element operations); the ranges hold enough
// indices to reach sp.minWork each (at least one index), and idle goroutines take the next
// range (dynamic scheduling, so uneven indices such as real and sentinel-tail rows balance).
// With one worker, or when the whole loop is below two ranges' worth of work, body(0, n)
// runs on the calling goroutine.
//
// Every output element of the sim is computed by exactly one body call, with the same
// operations in the same order whatever the split, so results are bitwise independent of it.
func parFor(sp split, n, cost int, body func(lo, hi int)) {
	if n <= 0 {
		return
	}
	cost = max(cost, 1)
	grain := max(1, sp.minWork/cost)
	chunks := (n + grain - 1) / grain
	w := sp.workers
	if w <= 1 || chunks < 2 {
		body(0, n)
		return
	}
	var next atomic.Int64
	run := func() {
		for {
			c := int(next.Add(1)) - 1
			if c >= chunks {
				return
			}
			lo := c * grain
			body(lo, min(lo+grain, n))
		}
	}
	g := min(w, chunks)
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
	parFor(st.par, len(v), 1, func(lo, hi int) { clear(v[lo:hi]) })
}

// copy copies src into dst (same length), split over st.par goroutines for large v.
func (st *state) copy(dst, src []float32) {
	parFor(st.par, len(src), 1, func(lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
}
