package oracle

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/internal/f64gemm"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/moe"
)

// taskCases are cases whose experts split into several parts with a small task work
// (partsWork): each expert has tens of rows, its products above the fused size.
// (work: the task work, Checker.partWork; parts of a few rows, every part still above
// reduceAcc's fused size, 2^15, where the expert's product is; the last case's parts, 8
// rows, are above f64gemm.MinWork: OpenBLAS in the openblas build).
var taskCases = []struct {
	name string
	cfg  moe.Config
	ct   contract.Contract
	work int
}{
	{"bf16-swiglu-exact", moe.Config{T: 96, H: 64, I: 64, E: 4, K: 2, DType: moe.BF16}, contract.Exact(), 1 << 15},
	{"fp16-ep-torch", moe.Config{T: 128, H: 64, I: 48, E: 8, K: 4, DType: moe.FP16, EP: moe.EP{World: 2, Rank: 1}}, contract.Torch(), 1 << 15},
	{"fp32-gptoss-bias-transposed-any", moe.Config{T: 96, H: 48, I: 64, E: 4, K: 2, DType: moe.FP32, Act: moe.GptOss, Layout: moe.Transposed, Bias: true}, contract.Any(), 1 << 15},
	{"bf16-openblas-sized", moe.Config{T: 128, H: 128, I: 128, E: 4, K: 2, DType: moe.BF16}, contract.Exact(), 1 << 18},
}

func taskCase(t *testing.T, cfg moe.Config) (*moe.Case, *gpu.Result) {
	t.Helper()
	c := casetest.Case(t, cfg, 5)
	return c, casetest.SimRun(t, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true})
}

// taskRecord is one task a check ran: its tensor and span (a sampled wgrad job: e and the
// drawn rows, lo = hi = −1).
type taskRecord struct {
	t         moe.Tensor
	lo, hi, e int
	rows      string
}

// loggedCheck checks res with workers goroutines (every loop split) and returns the
// verdict and the tasks the span comparisons ran with task work work, sorted.
func loggedCheck(t *testing.T, c *moe.Case, res *gpu.Result, o Options, workers, work int, whole bool) (*Verdict, []taskRecord) {
	t.Helper()
	var mu sync.Mutex
	var tasks []taskRecord
	k := &Checker{sp: par.Split{Workers: workers, MinWork: 1}, partSize: taskSize{work: work, rows: 1}, wholeExperts: whole,
		taskLog: func(tn moe.Tensor, s span, _ time.Duration) {
			mu.Lock()
			tasks = append(tasks, taskRecord{tn, s.lo, s.hi, s.e, fmt.Sprint(s.rows)})
			mu.Unlock()
		}}
	if workers == 1 {
		k.sp.MinWork = par.MinWork
	}
	v, err := k.Check(c, res, o)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(tasks, func(a, b taskRecord) int {
		if a.t != b.t {
			return int(a.t) - int(b.t)
		}
		if a.e != b.e {
			return a.e - b.e
		}
		if a.lo != b.lo {
			return a.lo - b.lo
		}
		if a.hi != b.hi {
			return a.hi - b.hi
		}
		return strings.Compare(a.rows, b.rows)
	})
	return v, tasks
}

// splitExperts reports whether some expert of a GEMM stage or weight gradient ran as
// several tasks.
func splitExperts(tasks []taskRecord) bool {
	n := map[[2]int]int{}
	for _, r := range tasks {
		if r.e >= 0 && (gemmK(&moe.Case{}, r.t) != 0 || r.t == moe.TensorH1 || r.t == moe.TensorH2 ||
			r.t == moe.TensorDAct || r.t == moe.TensorDXs || r.t == moe.TensorDW1 || r.t == moe.TensorDW2) {
			n[[2]int{int(r.t), r.e}]++
		}
	}
	for _, c := range n {
		if c > 1 {
			return true
		}
	}
	return false
}

// TestPartsWorkerFree: the parts of the GEMM stages and weight gradients (parallel.go) are
// the same tasks on 1, 2 and 16 workers (it fails if the split depended on the worker
// count), experts do split into several, and the verdicts — passing, failing, sampled —
// are the same text on every worker count.
func TestPartsWorkerFree(t *testing.T) {
	for _, tc := range taskCases {
		c, res := taskCase(t, tc.cfg)
		bad := corrupt(res)
		for _, v := range []struct {
			name string
			r    *gpu.Result
			o    Options
		}{{"pass", res, Options{}}, {"fail", bad, Options{}},
			{"pass-sampled", res, Options{Sample: Sample{Fraction: 0.5, Seed: 3}}},
			{"fail-sampled", bad, Options{Sample: Sample{Fraction: 0.5, Seed: 3}}}} {
			t.Run(tc.name+"/"+v.name, func(t *testing.T) {
				v.o.Contract = tc.ct
				v1, t1 := loggedCheck(t, c, v.r, v.o, 1, tc.work, false)
				if want := v.name[:4] == "pass"; v1.Pass != want {
					t.Fatalf("serial verdict pass=%v, want %v: %s", v1.Pass, want, v1.Summary())
				}
				if !splitExperts(t1) {
					t.Fatalf("no expert split into parts: the test does not exercise the split (%d tasks: %v)", len(t1), t1)
				}
				for _, w := range []int{2, 16} {
					vw, tw := loggedCheck(t, c, v.r, v.o, w, tc.work, false)
					if !slices.Equal(t1, tw) {
						t.Errorf("%d workers ran other tasks than 1 (%d against %d): the parts depend on the worker count", w, len(tw), len(t1))
					}
					if s1, sw := dump(v1), dump(vw); s1 != sw {
						t.Errorf("%d workers: verdict differs from the serial one:\nserial %s\nsplit  %s", w, s1, sw)
					}
				}
			})
		}
	}
}

// TestPartsBitwiseWhole: in the default build (f64gemm.RowExact) the parts give every
// element the bits of one task per expert, so verdicts — statistics, failures, worst
// elements — are those of the unsplit check.
func TestPartsBitwiseWhole(t *testing.T) {
	if !f64gemm.RowExact {
		t.Skip("OpenBLAS: an element's bits may depend on its part (parallel.go); TestPartsWorkerFree holds")
	}
	for _, tc := range taskCases {
		c, res := taskCase(t, tc.cfg)
		for _, v := range []struct {
			name string
			r    *gpu.Result
			o    Options
		}{{"pass", res, Options{}}, {"fail", corrupt(res), Options{}},
			{"fail-sampled", corrupt(res), Options{Sample: Sample{Fraction: 0.5, Seed: 3}}}} {
			t.Run(tc.name+"/"+v.name, func(t *testing.T) {
				v.o.Contract = tc.ct
				vp, tp := loggedCheck(t, c, v.r, v.o, 2, tc.work, false)
				vw, tw := loggedCheck(t, c, v.r, v.o, 2, tc.work, true)
				if !splitExperts(tp) || splitExperts(tw) {
					t.Fatalf("split: parts %v, whole %v; want true, false", splitExperts(tp), splitExperts(tw))
				}
				if sp, sw := dump(vp), dump(vw); sp != sw {
					t.Errorf("parts' verdict differs from whole experts':\nparts %s\nwhole %s", sp, sw)
				}
			})
		}
	}
}

// TestGemmParts: the parts are near-equal, cover the rows, follow the task work and keep
// the whole product's reduction code (sameReduction) at every part size.
func TestGemmParts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		m, n, k int
		ts      taskSize
		want    int
	}{
		{"parts/qwen-h1-T4096", 256, 1536, 2048, defaultTasks, 1}, // 256 rows: one part of ≥ 256
		{"parts/qwen-h1-T16384", 1024, 1536, 2048, defaultTasks, 4},
		{"parts/qwen-h1-T8192", 770, 1536, 2048, defaultTasks, 1}, // 3 parts: fewer than 4
		{"parts/qwen-dw2-T8192", 2048, 768, 520, defaultTasks, 6},
		{"parts/qwen-dw1-T4096", 1536, 2048, 256, defaultTasks, 6},
		{"parts/qwen-dw2-T4096", 2048, 768, 256, defaultTasks, 1}, // 3 parts: fewer than 4
		{"parts/small-product", 40, 16, 16, defaultTasks, 1},
		{"parts/whole", 256, 1536, 2048, taskSize{}, 1},
		{"parts/fused-floor", 32, 128, 64, taskSize{1 << 10, 1, 0}, 8},   // parts of 4 rows: 4·128·64 = 2^15, not fused
		{"parts/fused-guard", 100, 64, 64, taskSize{1 << 10, 1, 0}, 12},  // parts of ≥ 8 rows: 8·64·64 = 2^15
		{"parts/gonum-blocked", 300, 64, 64, taskSize{1 << 10, 1, 0}, 1}, // 300 rows: 5 blocks of 64, a part of ≤ 192: 3
		{"parts/min-rows", 100, 64, 64, taskSize{1 << 10, 30, 0}, 3},
		{"parts/min-parts", 100, 64, 64, taskSize{1 << 10, 30, 4}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := gemmParts(tc.m, tc.n, tc.k, tc.ts)
			if q != tc.want {
				t.Fatalf("gemmParts(%d, %d, %d, %+v) = %d, want %d", tc.m, tc.n, tc.k, tc.ts, q, tc.want)
			}
			for p := range q {
				a, b := partBounds(tc.m, q, p), partBounds(tc.m, q, p+1)
				if b-a < tc.m/q || b-a > tc.m/q+1 {
					t.Fatalf("part %d of %d: %d rows, want ⌊%d/%d⌋ or one more", p, q, b-a, tc.m, q)
				}
				if !sameReduction(tc.m, b-a, tc.n, tc.k) {
					t.Fatalf("part %d (%d rows) is reduced by other code than the whole (%d rows)", p, b-a, tc.m)
				}
			}
			if partBounds(tc.m, q, q) != tc.m {
				t.Fatal("parts do not cover the rows")
			}
		})
	}
}

// TestLargestFirst: experts' spans run first, by decreasing largest part, each expert's
// parts together and in order; the tail after, in order; no order without expert spans.
func TestLargestFirst(t *testing.T) {
	en := &encl{E: 3}
	for _, tc := range []struct {
		name  string
		spans []span
		want  []int
	}{
		{"order/whole-among-split", []span{{0, 250, 0, nil}, {250, 500, 1, nil}, {500, 760, 1, nil}, {760, 1270, 2, nil}, {1270, 1300, -1, nil}},
			[]int{3, 1, 2, 0, 4}},
		{"order/tail-only", []span{{0, 10, -1, nil}, {10, 30, -1, nil}}, nil},
		{"order/equal-experts", []span{{0, 5, 0, nil}, {5, 10, 1, nil}, {10, 12, -1, nil}}, []int{0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf orderBufs
			if got := en.largestFirst(moe.TensorH1, tc.spans, &buf); !slices.Equal(got, tc.want) {
				t.Fatalf("largestFirst = %v, want %v", got, tc.want)
			}
		})
	}
}
