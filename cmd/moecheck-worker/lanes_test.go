package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/worker"
	"github.com/moecheck/moecheck/moe"
)

// The real worker main serving lanes of the sim (-lanes from MOECHECK_WORKER_LANES, as the
// client asks) with -crash-shape: while lanes 0 and 2 run other cases, lane 1 runs cases of
// the crash shape. Only those are blamed; every other run matches the in-process sim.
func TestWorkerLanesCrashShape(t *testing.T) {
	bs, err := worker.NewLanes(worker.Options{Command: []string{os.Args[0], "-test.run=^$"},
		Env: append(os.Environ(), "MOECHECK_WORKER_MAIN=1", "MOECHECK_WORKER_ARGS=-crash-shape 9,8,4,3,2"), Timeout: time.Minute}, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, b := range bs {
			b.Close()
		}
	}()
	ctx := context.Background()
	other, err := mkCase(moe.Config{T: 8, H: 8, I: 4, E: 3, K: 2, DType: moe.FP32, EP: moe.EP{World: 2, Rank: 1}}, 3, moe.Normal, true)
	if err != nil {
		t.Fatal(err)
	}
	o := gpu.RunOptions{Poison: gpu.PoisonNaN}
	want, err := sim.New(sim.Options{}).Run(ctx, other, o)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]string, 3)
	for k, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 4; n++ {
				if k == 1 {
					_, err := b.Run(ctx, smallCase(t, moe.BF16), o)
					if ce, ok := gpu.AsCaseError(err); !ok || ce.Kind != gpu.Crashed {
						errs[k] = fmt.Sprintf("lane 1, crash shape: err = %v, want a crash", err)
						return
					}
					continue
				}
				r, err := b.Run(ctx, other, o)
				if err != nil {
					errs[k] = fmt.Sprintf("lane %d: an innocent case was blamed: %v", k, err)
					return
				}
				if !same(r.Y, want.Y) || !same(r.DW1, want.DW1) || !same(r.DRW, want.DRW) {
					errs[k] = fmt.Sprintf("lane %d: result differs from the in-process sim", k)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Error(e)
		}
	}
	// Each crash case restarts the worker at least once (twice when other lanes were in flight:
	// the shared failure, then its lone re-run).
	if name, _, restarts, _ := worker.Info(bs[0]); name != "sim" || restarts < 4 {
		t.Errorf("backend %q restarts %d; want sim and at least 4 (one per crash case)", name, restarts)
	}
}

// The -selftest lane exercise on sim lanes: every concurrent run bitwise equal to lane 0's.
func TestSelftestLanesSim(t *testing.T) {
	bs := []gpu.Backend{sim.New(sim.Options{}), sim.New(sim.Options{}), sim.New(sim.Options{})}
	var out bytes.Buffer
	if n := selftestLanes(&out, bs, true); n != 0 {
		t.Fatalf("%d failures:\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "3 lanes ran") {
		t.Fatalf("no lane summary:\n%s", out.String())
	}
}

// -lanes bounds and a worker started with lanes but without the client's descriptors.
func TestWorkerLanesFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"lanes/zero", []string{"-backend", "sim", "-lanes", "0"}, 2, "-lanes 0: want between 1 and"},
		{"lanes/huge", []string{"-backend", "sim", "-lanes", "100000"}, 2, "want between 1 and"},
		{"lanes/no-descriptors", []string{"-backend", "sim", "-lanes", "40"}, 2, "lane"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, strings.NewReader(""), &out, &errb)
			if code != tc.code || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("exit %d (%s), want %d naming %q", code, errb.String(), tc.code, tc.want)
			}
		})
	}
}
