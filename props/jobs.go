package props

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moecheck/moecheck/internal/jobs"
)

// runJobs is Run with cfg.Jobs > 1: a feeder hands case indices out in order, each job runs
// whole cases (shrinking included) on its own Env, and the calling goroutine commits the
// results in case order, so the Report, the OnCase calls and Next do not depend on how the
// cases were scheduled. *next is set to the first index not finished.
func runJobs(ctx context.Context, cfg RunConfig, props []Property, shards, n int, t0 time.Time, rep *Report, next *int) error {
	if cfg.NewEnv == nil {
		return fmt.Errorf("props: %d jobs need RunConfig.NewEnv (an environment, and a backend instance, per job)", cfg.Jobs)
	}
	// The jobs' environments are opened concurrently: a worker backend's start-up (a
	// PyTorch worker imports torch and initialises CUDA: seconds) is paid once, not per job.
	envs := make([]*Env, cfg.Jobs)
	envs[0] = cfg.Env
	errs := make([]error, cfg.Jobs)
	var opened sync.WaitGroup
	for k := 1; k < cfg.Jobs; k++ {
		opened.Go(func() { envs[k], errs[k] = cfg.NewEnv(k) })
	}
	opened.Wait()
	for k := 1; k < cfg.Jobs; k++ {
		if errs[k] != nil {
			return fmt.Errorf("props: job %d: %w", k, errs[k])
		}
		if envs[k] == nil || envs[k].Backend == nil {
			return fmt.Errorf("props: job %d: NewEnv returned no backend", k)
		}
	}
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// stop is the lowest index that ends the run (a failure without KeepGoing, or an
	// error): nothing past it is handed out, and a job past it does not shrink.
	var stop atomic.Int64
	stop.Store(math.MaxInt64)
	lower := func(i int) {
		for cur := stop.Load(); int64(i) < cur && !stop.CompareAndSwap(cur, int64(i)); cur = stop.Load() {
		}
	}
	// window bounds the results held out of order behind a slow case (jobs.Window says why
	// it is large and why that costs little memory).
	window := jobs.Window(cfg.Jobs)
	tokens := make(chan struct{}, window)
	work := make(chan int)
	type result struct {
		i  int
		co caseOutcome
	}
	results := make(chan result, window)
	quit := make(chan struct{})

	// the feeder: case indices of this shard, in order; fedTo is where it stopped.
	end := cfg.Start + n
	fedTo := end
	go func() {
		defer close(work)
		for i := cfg.Start; (n == 0 && i < math.MaxInt) || (n > 0 && i < end); i++ {
			if cfg.Duration > 0 && time.Since(t0) >= cfg.Duration || jctx.Err() != nil || int64(i) > stop.Load() {
				fedTo = i
				return
			}
			if i%shards != cfg.Shard {
				continue
			}
			select {
			case tokens <- struct{}{}:
			case <-quit:
				fedTo = i
				return
			}
			select {
			case work <- i:
			case <-quit:
				fedTo = i
				return
			}
		}
		if n == 0 {
			fedTo = math.MaxInt
		}
	}()
	var wg sync.WaitGroup
	for _, env := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if int64(i) > stop.Load() {
					continue // past the run's end: dropped
				}
				co := runCase(jctx, cfg, env, props, i, func() bool {
					if !cfg.KeepGoing {
						lower(i)
					}
					return int64(i) <= stop.Load() // a lower failure ends the run before this one
				})
				if co.err != nil || (!co.cr.Pass && !cfg.KeepGoing) {
					lower(i)
				}
				results <- result{i, co}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	// the committer: in case order, on this goroutine.
	want := cfg.Start
	for want%shards != cfg.Shard && want < math.MaxInt {
		want++
	}
	pending := map[int]caseOutcome{}
	stopped, stopNext := false, 0
	var runErr error
	for r := range results {
		if stopped {
			continue // draining the jobs after the run ended
		}
		pending[r.i] = r.co
		for co, ok := pending[want]; ok; co, ok = pending[want] {
			delete(pending, want)
			<-tokens
			i := want
			want += shards
			if co.err != nil {
				stopped, stopNext, runErr = true, i, co.err
				break
			}
			if !commit(cfg, rep, co.cr) {
				stopped, stopNext = true, i+1
				break
			}
		}
		if stopped {
			close(quit)
			cancel()
		}
	}
	if stopped {
		*next = stopNext
	} else {
		*next = fedTo
	}
	return runErr
}
