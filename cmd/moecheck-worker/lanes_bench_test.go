package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/worker"
)

// BenchmarkLanes measures worker runs per second through internal/worker with N lanes of one
// worker process (lanes=1: one process, one case at a time), the self-test's cases under
// signature poison with stages, each lane in its own order. The worker is this test binary
// serving the sim, or $MOECHECK_BENCH_WORKER (a command line, e.g. on the GPU host
// ".device/moecheck-worker -backend cuda"). Metric runs/s; compare across lanes=N.
//
//	go test -run '^$' -bench Lanes ./cmd/moecheck-worker
//	go test -c -o .device/worker.test ./cmd/moecheck-worker   # then on the GPU host:
//	MOECHECK_BENCH_WORKER='.device/moecheck-worker -backend cuda' .device/worker.test -test.run '^$' -test.bench Lanes
func BenchmarkLanes(b *testing.B) {
	cmd := []string{os.Args[0], "-test.run=^$"}
	env := append(os.Environ(), "MOECHECK_WORKER_MAIN=1")
	name := "sim"
	if w := strings.Fields(os.Getenv("MOECHECK_BENCH_WORKER")); len(w) > 0 {
		cmd, env, name = w, nil, "worker"
	}
	cases, err := selftestCases(true)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 2, 4, 8, 16} {
		b.Run(fmt.Sprintf("backend=%s/lanes=%d", name, n), func(b *testing.B) {
			bs, err := worker.NewLanes(worker.Options{Command: cmd, Env: env, Timeout: 5 * time.Minute}, n)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				for _, l := range bs {
					l.Close()
				}
			}()
			o := gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true}
			ctx := context.Background()
			for _, c := range cases { // warm the pools
				if _, err := bs[0].Run(ctx, c.c, o); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			var mu sync.Mutex
			var firstErr error
			b.ResetTimer()
			for k := range bs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						c := cases[(i+k)%len(cases)].c
						if _, err := bs[k].Run(ctx, c, o); err != nil {
							mu.Lock()
							firstErr = err
							mu.Unlock()
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			if firstErr != nil {
				b.Fatal(firstErr)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
		})
	}
}
