package oracle

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/moe"
)

// prepCase builds a case of cfg (seed 11) and its sim run with stages, after edit (nil: none)
// changes the case.
func prepCase(t *testing.T, cfg moe.Config, edit func(c *moe.Case)) (*moe.Case, *gpu.Result) {
	t.Helper()
	c := casetest.Case(t, cfg, 11)
	if edit != nil {
		edit(c)
	}
	return c, casetest.SimRun(t, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true})
}

// withXs is a copy of res whose stage xs has v at element k.
func withXs(res *gpu.Result, k int, v float32) *gpu.Result {
	out := *res
	st := *res.Stages
	st.Xs = append([]float32(nil), st.Xs...)
	st.Xs[k] = v
	out.Stages = &st
	return &out
}

// TestPreparedXsDiffers: the check takes a span of stage h1's enclosure from the prepared work
// only where the path's xs rows of the span are the operand it was computed from. A path
// whose xs differs from the gathered X in an expert's rows — a wrong value (xs and h1 fail),
// −0 for +0 and a NaN where X is finite (xs passes or fails; either way h1 must be derived
// from the path's own xs) — gets that expert's span derived, every other span prepared, and
// the verdict without the prepared work, bitwise, serial and split; a difference in the
// sentinel tail (rows ≥ R, which GEMM 1 does not read) and a NaN of another payload where X
// itself has one (the same unknown operand) change no span. The misuse this guards against
// is visible: a prepared h1 taken for the wrong-value path would pass its h1.
func TestPreparedXsDiffers(t *testing.T) {
	cfg := moe.Config{T: 24, H: 40, I: 24, E: 8, K: 3, DType: moe.BF16, EP: moe.EP{World: 4, Rank: 1}}
	const row = 1                                  // a row of the first expert with rows (which expert, found below)
	zeroAt := func(c *moe.Case, _ *moe.Plan) int { // the xs element whose X is set to +0 or NaN
		return row*c.H + 3
	}
	type variant struct {
		name    string
		nanX    bool // X holds a NaN at zeroAt's element (c.NonFinite)
		k       func(c *moe.Case, p *moe.Plan) int
		v       float32
		pass    bool
		derived int // h1 spans the check must derive itself
	}
	for _, tc := range []variant{
		{name: "pass/unchanged", pass: true},
		{name: "fail/wrong-value", k: zeroAt, v: 0.625, derived: 1},
		{name: "pass/negative-zero", k: zeroAt, v: float32(math.Copysign(0, -1)), pass: true, derived: 1},
		{name: "fail/nan", k: zeroAt, v: float32(math.NaN()), derived: 1},
		{name: "fail/tail-value", k: func(c *moe.Case, p *moe.Plan) int { return (p.Rows+2)*c.H + 5 }, v: 0.5},
		{name: "pass/x-nan-other-payload", nanX: true, k: zeroAt, v: math.Float32frombits(0x7FC00000 | 77), pass: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, res := prepCase(t, cfg, func(c *moe.Case) {
				p, err := c.Plan()
				if err != nil {
					t.Fatal(err)
				}
				// X of the token of sorted row `row` at column 3: +0 (or NaN), so that the
				// variants' values differ from it in the ways named
				tok := int(p.Perm[row]) / c.K
				c.X[tok*c.H+3] = 0
				if tc.nanX {
					c.X[tok*c.H+3] = math.NaN()
					c.NonFinite = true
				}
			})
			p, err := c.Plan()
			if err != nil {
				t.Fatal(err)
			}
			if p.Rows <= row+1 || p.Rows >= c.S() {
				t.Fatalf("R = %d of S = %d: the case does not have the rows the variants need", p.Rows, c.S())
			}
			r := res
			if tc.k != nil {
				r = withXs(res, tc.k(c, p), tc.v)
			}
			spans := newEncl(c, p).h1Spans(nil)
			expert := 0
			for _, s := range spans {
				if s.e >= 0 {
					expert++
				}
			}
			for _, sp := range []par.Split{{Workers: 1, MinWork: par.MinWork}, {Workers: 4, MinWork: 1}} {
				want, err := (&Checker{sp: sp}).Check(c, r, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if want.Pass != tc.pass {
					t.Fatalf("workers %d: pass = %v, want %v: %s", sp.Workers, want.Pass, tc.pass, want.Summary())
				}
				k := &Checker{sp: sp, prepareAll: true}
				pre := k.Prepare(c, Options{})
				got, err := k.Check(c, r, Options{Prepared: pre})
				pre.Close()
				if err != nil {
					t.Fatal(err)
				}
				if w, g := fmt.Sprintf("%+v", *want), fmt.Sprintf("%+v", *got); w != g {
					t.Errorf("workers %d: the verdict with the prepared work differs:\nwithout %s\nwith    %s", sp.Workers, w, g)
				}
				if h := k.preparedHits.Load(); h != int64(expert-tc.derived) {
					t.Errorf("workers %d: %d h1 spans taken from the prepared work, want %d of %d", sp.Workers, h, expert-tc.derived, expert)
				}
			}
			if tc.name != "fail/wrong-value" {
				return
			}
			// The guard matters: the same prepared enclosure, handed over as if computed from
			// the path's xs, lets h1 pass.
			k := &Checker{prepareAll: true}
			pre := k.Prepare(c, Options{})
			<-pre.done
			i := tc.k(c, p)
			pre.h1.xs[i] = r.Stages.Xs[i]
			misused, err := k.Check(c, r, Options{Prepared: pre})
			pre.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range misused.Failures {
				if f.Tensor == moe.TensorH1 {
					t.Fatalf("h1 fails against the prepared enclosure of the gathered X: %v", f)
				}
			}
			honest, _ := (&Checker{}).Check(c, r, Options{})
			h1 := false
			for _, f := range honest.Failures {
				h1 = h1 || f.Tensor == moe.TensorH1
			}
			if !h1 {
				t.Fatalf("the wrong xs value does not make h1 fail; the test shows nothing: %s", honest.Summary())
			}
		})
	}
}

// TestPrepareLarge: at the real threshold a case whose GEMM 1 is 2^30 multiply-adds over its
// S rows (T 1,024, K 4, H 512, I 256, an EP-8 rank) is prepared, its check takes the prepared
// h1 spans, and the verdict is the one without; the largest shape of the default generator
// (T 300, K 8, H = I = 320) is not prepared.
func TestPrepareLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("a case of 4,096 slots")
	}
	small := &moe.Case{Config: moe.Config{T: 300, H: 320, I: 320, E: 8, K: 8, DType: moe.BF16}} // the size decides, before any validation
	if pre := new(Checker).Prepare(small, Options{}); pre != nil {
		pre.Close()
		t.Errorf("the generator's largest shape was prepared (work %.3g, threshold %d)", prepareWork(small), prepareMinWork)
	}
	cfg := moe.Config{T: 1024, H: 512, I: 256, E: 2, K: 4, DType: moe.BF16, EP: moe.EP{World: 8, Rank: 3}}
	c, res := prepCase(t, cfg, nil)
	k := new(Checker)
	pre := k.Prepare(c, Options{})
	if pre == nil {
		t.Fatalf("not prepared (work %.3g, threshold %d)", prepareWork(c), prepareMinWork)
	}
	defer pre.Close()
	got, err := k.Check(c, res, Options{Prepared: pre})
	if err != nil {
		t.Fatal(err)
	}
	want, err := new(Checker).Check(c, res, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !want.Pass {
		t.Fatalf("the sim's run fails: %s", want.Summary())
	}
	if w, g := fmt.Sprintf("%+v", *want), fmt.Sprintf("%+v", *got); w != g {
		t.Errorf("the verdict with the prepared work differs:\nwithout %s\nwith    %s", w, g)
	}
	if k.preparedHits.Load() == 0 {
		t.Error("the check took no prepared h1 span")
	}
	if pre.h1 != nil {
		t.Error("the check did not take over the prepared enclosure (its memory would be held until Close)")
	}
}

// TestPrepareNoLeak: the prepared work ends, leaving no goroutine, when it is closed without
// a check (the run failed), when the caller's Stop closes (the check then reports
// ErrStopped), and after a check took it.
func TestPrepareNoLeak(t *testing.T) {
	cfg := moe.Config{T: 64, H: 128, I: 64, E: 4, K: 4, DType: moe.BF16}
	c, res := prepCase(t, cfg, nil)
	settle := func(base int) int {
		n := runtime.NumGoroutine()
		for deadline := time.Now().Add(5 * time.Second); n > base && time.Now().Before(deadline); n = runtime.NumGoroutine() {
			time.Sleep(time.Millisecond)
		}
		return n
	}
	for _, tc := range []struct {
		name string
		run  func(k *Checker) error
	}{
		{"closed-without-check", func(k *Checker) error {
			k.Prepare(c, Options{}).Close()
			return nil
		}},
		{"stopped", func(k *Checker) error {
			stop := make(chan struct{})
			pre := k.Prepare(c, Options{Stop: stop})
			close(stop)
			select {
			case <-pre.done:
			case <-time.After(10 * time.Second):
				return errors.New("the work did not stop within 10 s of Stop")
			}
			_, err := k.Check(c, res, Options{Stop: stop, Prepared: pre})
			pre.Close()
			if !errors.Is(err, ErrStopped) {
				return fmt.Errorf("check with Stop closed: %v, want ErrStopped", err)
			}
			return nil
		}},
		{"checked", func(k *Checker) error {
			pre := k.Prepare(c, Options{})
			defer pre.Close()
			v, err := k.Check(c, res, Options{Prepared: pre})
			if err == nil && !v.Pass {
				err = fmt.Errorf("fails: %s", v.Summary())
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := settle(runtime.NumGoroutine())
			for range 3 {
				if err := tc.run(&Checker{prepareAll: true}); err != nil {
					t.Fatal(err)
				}
			}
			if n := settle(base); n > base {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines after, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

// TestPreparedMismatch: a prepared work handed to the check of another case, or of a contract
// with other freedoms, is an error naming it, not a verdict.
func TestPreparedMismatch(t *testing.T) {
	cfg := moe.Config{T: 8, H: 16, I: 8, E: 4, K: 2, DType: moe.BF16}
	c, res := prepCase(t, cfg, nil)
	other, _ := prepCase(t, cfg, nil)
	k := &Checker{prepareAll: true}
	for _, tc := range []struct {
		name string
		c    *moe.Case
		opts Options
		want string
	}{
		{"case", other, Options{}, "another case"},
		{"contract", c, Options{Contract: contract.Any()}, "contract"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pre := k.Prepare(c, Options{})
			defer pre.Close()
			tc.opts.Prepared = pre
			_, err := k.Check(tc.c, res, tc.opts)
			if err == nil || !strings.Contains(err.Error(), "prepared") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming the prepared work's %s", err, tc.want)
			}
		})
	}
}

// BenchmarkCheckPrepared measures the check that follows the run, with the prepared work
// done during the run (prepared=true: Prepare started before the timer and waited for
// outside it, as it overlaps a backend's run) and without (prepared=false), at a shape whose
// GEMM 1 is over Prepare's threshold (T 512, H 1,024, I 512, 8 experts, top-4: 2.1·10^9
// multiply-adds). Reported as checks/s, and the prepared work's wall seconds per check
// (prepare-s/op).
func BenchmarkCheckPrepared(b *testing.B) {
	cfg := moe.Config{T: 512, H: 1024, I: 512, E: 8, K: 4, DType: moe.BF16}
	c := casetest.Case(b, cfg, 1)
	res := casetest.SimRun(b, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true})
	for _, prepared := range []bool{false, true} {
		b.Run(fmt.Sprintf("T=512/H=1024/I=512/E=8/K=4/prepared=%v", prepared), func(b *testing.B) {
			var k Checker
			var prep time.Duration
			for i := 0; i < b.N; i++ {
				var pre *Prepared
				if prepared {
					b.StopTimer()
					t0 := time.Now()
					if pre = k.Prepare(c, Options{}); pre == nil {
						b.Fatal("not prepared")
					}
					<-pre.done
					prep += time.Since(t0)
					b.StartTimer()
				}
				v, err := k.Check(c, res, Options{Prepared: pre})
				pre.Close()
				if err != nil || !v.Pass {
					b.Fatal(err, v.Summary())
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
			if prepared {
				b.ReportMetric(prep.Seconds()/float64(b.N), "prepare-s/op")
			}
		})
	}
}

// TestPreparedParts: with the experts of stage h1 in parts (parallel.go's gemmTasks), the
// prepared work computes its enclosure in the check's parts, so a check with it gives the
// verdict of a check without it, bitwise, and takes every part from it, serial and split.
// Products this size reach OpenBLAS under the openblas build (CI runs it), where an
// element's bits may depend on the part (f64gemm.RowExact); the OpenBLAS of the development
// machine happens to give the same bits for whole experts, so there this test would not
// notice prepared work in whole experts — gemmTasks, shared by both, is what keeps them
// the same parts.
func TestPreparedParts(t *testing.T) {
	cfg := moe.Config{T: 512, H: 256, I: 128, E: 4, K: 2, DType: moe.BF16}
	c, res := prepCase(t, cfg, nil)
	ts := taskSize{work: 1 << 22, rows: 32, parts: 2}
	for _, sp := range []par.Split{{Workers: 1}, par.New(4, 1)} {
		k := &Checker{sp: sp, prepareAll: true, partSize: ts}
		pre := k.Prepare(c, Options{})
		if pre == nil {
			t.Fatal("not prepared")
		}
		got, err := k.Check(c, res, Options{Prepared: pre})
		pre.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, err := (&Checker{sp: sp, partSize: ts}).Check(c, res, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !want.Pass {
			t.Fatalf("the sim's run fails: %s", want.Summary())
		}
		if w, g := fmt.Sprintf("%+v", *want), fmt.Sprintf("%+v", *got); w != g {
			t.Errorf("workers %d: the verdict with the prepared work differs:\nwithout %s\nwith    %s", sp.Workers, w, g)
		}
		if n := k.preparedHits.Load(); n <= int64(cfg.E) {
			t.Errorf("workers %d: %d prepared h1 spans taken, want one per part (more than the %d experts)", sp.Workers, n, cfg.E)
		}
	}
}
