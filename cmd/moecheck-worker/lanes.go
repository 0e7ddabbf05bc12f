package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/worker"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// selftestLanes runs the self-test's cases on every lane at once (each lane in its own
// order, several rounds) and checks every result — outputs and, with stages, every stage —
// bitwise against the same case run alone on lane 0 first (oracle.CompareBitwise): lanes must not change a single bit (shared context, per-lane streams and
// pools). It prints the throughput of one lane alone and of all lanes together, and returns
// the number of failures.
func selftestLanes(w io.Writer, bs []gpu.Backend, quick bool) int {
	cases, err := selftestCases(quick)
	if err != nil {
		fmt.Fprintf(w, "lanes: FAIL: %v\n", err)
		return 1
	}
	ctx := context.Background()
	opts := []gpu.RunOptions{{Poison: gpu.PoisonSignature, Stages: true}, {Poison: gpu.PoisonHuge, PoisonSeed: 5}}
	type job struct {
		c int
		o gpu.RunOptions
	}
	var jobs []job
	for i := range cases {
		for _, o := range opts {
			jobs = append(jobs, job{i, o})
		}
	}
	ref := make([]*gpu.Result, len(jobs))
	t0 := time.Now()
	for j, jb := range jobs {
		r, err := bs[0].Run(ctx, cases[jb.c].c, jb.o)
		if err != nil {
			fmt.Fprintf(w, "lanes: FAIL: %s alone on lane 0: %v\n", cases[jb.c].name, err)
			return 1
		}
		ref[j] = r
	}
	alone := time.Since(t0)
	rounds := 4
	if quick {
		rounds = 2
	}
	var mu sync.Mutex
	fails := 0
	var wg sync.WaitGroup
	t0 = time.Now()
	for k, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < rounds*len(jobs); n++ {
				j := (n + k*len(jobs)/len(bs)) % len(jobs) // each lane starts elsewhere
				jb := jobs[j]
				r, err := b.Run(ctx, cases[jb.c].c, jb.o)
				msg := ""
				if err != nil {
					msg = err.Error()
				} else if fs := oracle.CompareBitwise(cases[jb.c].c, ref[j], r, fmt.Sprintf("lane %d vs lane 0 alone", k)); len(fs) > 0 {
					msg = fs[0].String()
				}
				if msg != "" {
					mu.Lock()
					fails++
					if fails <= 10 {
						fmt.Fprintf(w, "lanes: FAIL: lane %d, %s (poison %s): %s\n", k, cases[jb.c].name, jb.o.Poison, msg)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	all := time.Since(t0)
	runs := rounds * len(jobs) * len(bs)
	fmt.Fprintf(w, "lanes: %d lanes ran %d runs at once (%d cases × %d poisons × %d rounds each): %d failed; bitwise equal to lane 0 alone otherwise\n",
		len(bs), runs, len(cases), len(opts), rounds, fails)
	fmt.Fprintf(w, "lanes: throughput %.1f runs/s on one lane alone, %.1f runs/s on %d lanes (%.2f×)\n",
		float64(len(jobs))/alone.Seconds(), float64(runs)/all.Seconds(), len(bs),
		(float64(runs)/all.Seconds())/(float64(len(jobs))/alone.Seconds()))
	return fails
}

// clientCheckLanes launches this executable as a worker of lanes lanes through
// internal/worker and runs, at once, the crash case on lane 1 and a normal case on every
// other lane, several times: the crash must be blamed on the crash case only (re-run alone),
// every other run must return the result of the case run alone, bit for bit.
func clientCheckLanes(w io.Writer, backend string, lanes int) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	bs, err := worker.NewLanes(worker.Options{Command: []string{exe, "-backend", backend}, Timeout: 2 * time.Minute}, lanes)
	if err != nil {
		return err
	}
	defer func() {
		for _, b := range bs {
			b.Close()
		}
	}()
	c, err := faultCase(moe.BF16)
	if err != nil {
		return err
	}
	ctx := context.Background()
	o := gpu.RunOptions{Poison: gpu.PoisonSignature}
	first, err := bs[0].Run(ctx, c, o)
	if err != nil {
		return fmt.Errorf("first case: %w", err)
	}
	const rounds = 3
	errs := make([]error, lanes)
	var wg sync.WaitGroup
	t0 := time.Now()
	for k, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < rounds; n++ {
				if k == 1 {
					_, err := fault.Run(ctx, b, c, gpu.RunOptions{}, fault.Of(fault.Crash))
					if ce, ok := gpu.AsCaseError(err); !ok || ce.Kind != gpu.Crashed {
						errs[k] = fmt.Errorf("lane 1, crash case: err = %v, want a Crashed CaseError", err)
						return
					}
					fmt.Fprintf(w, "client-check: lane 1 crash case -> %v\n", err)
					continue
				}
				r, err := b.Run(ctx, c, o)
				if err != nil {
					errs[k] = fmt.Errorf("lane %d, normal case: %w (blamed for another lane's crash)", k, err)
					return
				}
				if same, where := sameResult(first, r); !same {
					errs[k] = fmt.Errorf("lane %d: result differs from the case alone in %s", k, where)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	name, dev, restarts, _ := worker.Info(bs[0])
	fmt.Fprintf(w, "client-check: ok: %d lanes of worker %s on %s, %d rounds: only the crash case was blamed (%d restarts, %d lone re-runs); every other run identical to the case alone (%v)\n",
		lanes, name, dev, rounds, restarts, worker.Reruns(bs[0]), time.Since(t0).Round(time.Millisecond))
	return nil
}
