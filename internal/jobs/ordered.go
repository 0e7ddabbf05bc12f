package jobs

import "sync"

// Ordered runs work(job, i) for every i in [0, n) on jobs goroutines (job in [0, jobs); a
// job runs one index at a time, so per-job state such as a backend needs no locking) and
// calls commit(i, v) in index order on the calling goroutine. When commit returns false,
// no index past i is started and results past i are dropped; Ordered returns once every
// started work call has returned. jobs < 1 means 1. At most Window(jobs) results wait behind a
// slow index.
func Ordered[T any](n, jobs int, work func(job, i int) T, commit func(i int, v T) bool) {
	if jobs < 1 {
		jobs = 1
	}
	type result struct {
		i int
		v T
	}
	window := Window(jobs)
	tokens := make(chan struct{}, window)
	idx := make(chan int)
	results := make(chan result, window)
	quit := make(chan struct{})
	go func() {
		defer close(idx)
		for i := 0; i < n; i++ {
			select {
			case tokens <- struct{}{}:
			case <-quit:
				return
			}
			select {
			case idx <- i:
			case <-quit:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for j := 0; j < jobs; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				results <- result{i, work(j, i)}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()
	pending := map[int]T{}
	next, stopped := 0, false
	for r := range results {
		if stopped {
			continue
		}
		pending[r.i] = r.v
		for v, ok := pending[next]; ok && !stopped; v, ok = pending[next] {
			delete(pending, next)
			<-tokens
			if !commit(next, v) {
				stopped = true
				close(quit)
			}
			next++
		}
	}
}

// Window is how many indices Ordered (and the property runner) let run ahead of the oldest
// unfinished one: 64 per job, at least 256. Case times are heavy-tailed — a wide or
// long-expert case, or a shrink, costs hundreds of typical cases — and with 4 per job 16
// CUDA lanes sat idle behind one slow case (the CLI used 2 of 16 cores). A waiting result is
// a case's outcome (a verdict and, for a failure, its description), not its tensors, so the
// memory this holds stays small.
func Window(jobs int) int { return max(64*jobs, 256) }
