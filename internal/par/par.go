package par

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// MinWork is the work, in element operations (a multiply-add, a conversion, a copied
// value), below which a loop runs on the calling goroutine alone. Starting and joining a
// goroutine costs about a microsecond; 1<<15 operations take tens of microseconds, so a
// loop below it gains nothing from splitting (the small cases of gpu/sim's and reference's
// BenchmarkRun stay serial; their BenchmarkRunPar measures the threshold's effect).
const MinWork = 1 << 15

// Split says how a computation may split its loops: over up to Workers goroutines, in
// ranges of at least MinWork element operations.
type Split struct {
	Workers, MinWork int
}

// New resolves the settings: workers 0 means runtime.GOMAXPROCS(0), minWork 0 means
// MinWork.
func New(workers, minWork int) Split {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if minWork <= 0 {
		minWork = MinWork
	}
	return Split{Workers: workers, MinWork: minWork}
}

// For calls body(arg, lo, hi) on disjoint ranges [lo, hi) covering [0, n), on up to
// sp.Workers goroutines. cost is the work of one index (element operations); the ranges hold
// enough indices to reach sp.MinWork each (at least one index), and idle goroutines take the
// next range (dynamic scheduling, so uneven indices such as real and sentinel-tail rows
// balance). With one worker, or when the whole loop is below two ranges' worth of work,
// body(arg, 0, n) runs on the calling goroutine and nothing is allocated (body should be a
// function or method expression, not a closure, for that).
//
// A caller whose every output element is computed by exactly one body call, with the same
// operations in the same order whatever the split, gets results bitwise independent of it
// (gpu/sim and reference test this: TestParallelBitwise, TestSplitBitwise).
func For[T any](sp Split, n, cost int, arg T, body func(T, int, int)) {
	if n <= 0 {
		return
	}
	grain := max(1, sp.MinWork/max(cost, 1))
	chunks := (n + grain - 1) / grain
	if sp.Workers <= 1 || chunks < 2 {
		body(arg, 0, n)
		return
	}
	run(min(sp.Workers, chunks), n, grain, chunks, arg, body)
}

// run is For's split: g goroutines (the caller's one of them) take ranges of grain
// indices in turn.
func run[T any](g, n, grain, chunks int, arg T, body func(T, int, int)) {
	var next atomic.Int64
	take := func() {
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
			take()
		}()
	}
	take()
	wg.Wait()
}
