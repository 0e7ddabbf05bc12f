package oracle

import (
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/internal/presets"
	"github.com/moecheck/moecheck/moe"
	"golang.org/x/sys/unix"
)

// listMakespan is the time w workers take for tasks of durations d handed out in order,
// each to the first worker free (onWorkers' hand-out).
func listMakespan(d []time.Duration, w int) time.Duration {
	free := make([]time.Duration, w)
	for _, x := range d {
		free[slices.Index(free, slices.Min(free))] += x
	}
	return slices.Max(free)
}

// TestListMakespan: the schedule of in-order hand-out.
func TestListMakespan(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    []time.Duration
		w    int
		want time.Duration
	}{
		{"makespan/one-worker", []time.Duration{1, 2, 3}, 1, 6},
		{"makespan/slowest-last", []time.Duration{1, 1, 1, 3}, 2, 4},
		{"makespan/more-workers", []time.Duration{5, 1}, 16, 5},
		{"makespan/none", nil, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := listMakespan(tc.d, tc.w); got != tc.want {
				t.Fatalf("listMakespan(%v, %d) = %v, want %v", tc.d, tc.w, got, tc.want)
			}
		})
	}
}

// BenchmarkStageMakespan estimates what the parts of the GEMM stages (parallel.go) gain on
// a host with more cores than this one: one check of a preset case (MOECHECK_MAKESPAN_PRESET,
// default the Qwen3-30B-A3B EP-8 rank at T = 512) on one goroutine and GOMAXPROCS 1, each
// task timed in its thread's CPU time (RUSAGE_THREAD: other processes on the machine do
// not count), with whole experts and with parts. Per GEMM stage it logs the tasks' CPU time
// (cpu: the parts' overhead, between the two runs) and the in-order schedule of the tasks on
// 16 workers (makespan16), against the ideal cpu/16; in the parts run also the schedule of
// the same measured parts merged back into one task per expert (merged16: the gain without
// the noise between two runs), and the schedule under a model of the device's spread of
// expert times (spread15: expert e's tasks 15 %·e/(E−1) slower). Estimates, not device measurements: run with -tags openblas
// -benchtime 1x for the device's build (one-threaded OpenBLAS per task; set
// OPENBLAS_CORETYPE where OpenBLAS does not know the CPU, f64gemm.CoreTypeFix).
func BenchmarkStageMakespan(b *testing.B) {
	id := os.Getenv("MOECHECK_MAKESPAN_PRESET")
	if id == "" {
		id = "qwen3-30b-a3b/ep8/rank3/T512/seed1"
	}
	p, o, err := presets.ParseID(id)
	if err != nil {
		b.Fatal(err)
	}
	c, err := p.Case(o)
	if err != nil {
		b.Fatal(err)
	}
	res := casetest.SimRun(b, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	threadCPU := func() time.Duration {
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// one check first, untimed: the first run grows the Checker-independent memory (the
	// pool's slabs, the runtime's heap) that later runs reuse
	if _, err := new(Checker).Check(c, res, Options{}); err != nil {
		b.Fatal(err)
	}
	stages := []moe.Tensor{moe.TensorH1, moe.TensorH2, moe.TensorDAct, moe.TensorDXs, moe.TensorDW2, moe.TensorDW1}
	const W = 16
	type task struct {
		e int
		d time.Duration
	}
	for _, mode := range []struct {
		name  string
		whole bool
	}{{"whole-experts", true}, {"parts", false}} {
		b.Run(mode.name, func(b *testing.B) {
			// the tasks run on this goroutine (one worker), OpenBLAS on the calling
			// thread: the thread's CPU time is the tasks' own, whatever else the
			// machine runs
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var total, span16, merged16, ideal, spread16 time.Duration
			for b.Loop() {
				tasks := map[moe.Tensor][]task{}
				k := &Checker{sp: par.Split{Workers: 1, MinWork: par.MinWork}, wholeExperts: mode.whole,
					taskLog: func(t moe.Tensor, s span, d time.Duration) { tasks[t] = append(tasks[t], task{s.e, d}) }, taskClock: threadCPU}
				v, err := k.Check(c, res, Options{})
				if err != nil || !v.Pass {
					b.Fatal(err, v.Summary())
				}
				total, span16, merged16, ideal, spread16 = 0, 0, 0, 0, 0
				for _, t := range stages {
					var cpu time.Duration
					var ds, merged []time.Duration
					for i, x := range tasks[t] {
						cpu += x.d
						ds = append(ds, x.d)
						if i > 0 && x.e >= 0 && x.e == tasks[t][i-1].e {
							merged[len(merged)-1] += x.d // the same expert's next part
							continue
						}
						merged = append(merged, x.d)
					}
					// the spread model: expert e's tasks slower by 15 %·e/(E−1), the
					// spread of the experts' times seen on the device with 16 busy cores,
					// which one-at-a-time timings here do not show
					var sp []time.Duration
					var spCPU time.Duration
					for _, x := range tasks[t] {
						f := 1.0
						if x.e >= 0 && c.E > 1 {
							f += 0.15 * float64(x.e) / float64(c.E-1)
						}
						sp = append(sp, time.Duration(f*float64(x.d)))
						spCPU += sp[len(sp)-1]
					}
					ms, mm, msp := listMakespan(ds, W), listMakespan(merged, W), listMakespan(sp, W)
					b.Logf("%s %-6s tasks %4d  cpu %7.3fs  makespan16 %6.3fs  merged16 %6.3fs (%d tasks)  ideal %6.3fs  spread15: makespan16 %6.3fs ideal %6.3fs",
						mode.name, t, len(ds), cpu.Seconds(), ms.Seconds(), mm.Seconds(), len(merged), (cpu / W).Seconds(), msp.Seconds(), (spCPU / W).Seconds())
					total += cpu
					span16 += ms
					merged16 += mm
					ideal += cpu / W
					spread16 += msp
				}
			}
			b.ReportMetric(total.Seconds(), "gemm-cpu-s")
			b.ReportMetric(span16.Seconds(), "makespan16-s")
			b.ReportMetric(merged16.Seconds(), "merged16-s")
			b.ReportMetric(ideal.Seconds(), "ideal16-s")
			b.ReportMetric(spread16.Seconds(), "spread15-makespan16-s")
		})
	}
}
