package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/worker"
	"github.com/moecheck/moecheck/moe"
)

// The self-test is a smoke test for a new device, not the oracle: it compares a backend with
// gpu/sim (the reference backend here, same faults) by relative L2 error per tensor
// (accumulation order differs), checks the
// routing bitwise, the exact contracts of docs/path.md bitwise, bitwise invariance under
// every poison policy and across runs, and that every fault of gpu.Catalog() changes the
// result.

// tolerance of the relative L2 error between two fp32-accumulating paths: a few units of the
// dtype's roundoff (storage roundings that differ by one ulp after a reordered sum, then
// propagated through later stages).
func tolerance(d moe.DType) float64 {
	switch d {
	case moe.BF16:
		return 8 * d.UnitRoundoff() // 3.1e-2
	case moe.FP16:
		return 8 * d.UnitRoundoff() // 3.9e-3
	}
	return 1e-4
}

type stCase struct {
	name string
	c    *moe.Case
}

func mkCase(cfg moe.Config, seed uint64, mode moe.DataMode, global bool) (*moe.Case, error) {
	r, g, err := moe.RandomGlobalRouting(cfg, seed)
	if err != nil {
		return nil, err
	}
	c, err := moe.Generate(cfg, r, seed+1, mode)
	if err != nil {
		return nil, err
	}
	if global {
		c.Global = g
	}
	return c, nil
}

func selftestCases(quick bool) ([]stCase, error) {
	var out []stCase
	shapes := []moe.Config{
		{T: 96, H: 64, I: 48, E: 6, K: 3},   // tensor-core path (H, I multiples of 8)
		{T: 37, H: 20, I: 12, E: 5, K: 2},   // CUDA-core path (odd sizes)
		{T: 300, H: 136, I: 72, E: 4, K: 4}, // several row tiles per expert, partial tiles
	}
	n := 0
	for si, sh := range shapes {
		for _, d := range moe.DTypes() {
			for _, act := range []moe.Activation{moe.SwiGLU, moe.GptOss} {
				for _, lay := range []moe.Layout{moe.Standard, moe.Transposed} {
					for _, ep := range []bool{false, true} {
						n++
						if quick && n%4 != 0 {
							continue
						}
						if si == 2 && (act == moe.GptOss) == (lay == moe.Standard) {
							continue // the large shape: half the combinations
						}
						cfg := sh
						cfg.DType, cfg.Act, cfg.Layout, cfg.Bias = d, act, lay, n%2 == 0
						if ep {
							cfg.EP = moe.EP{World: 4, Rank: 2}
						}
						mode := moe.DataModes()[n%3] // normal, integer, large... (subnormal via n%3 below)
						if n%5 == 0 {
							mode = moe.Subnormal
						}
						if mode == moe.Large {
							mode = moe.Normal
						}
						c, err := mkCase(cfg, uint64(1000+n), mode, ep)
						if err != nil {
							return nil, err
						}
						out = append(out, stCase{fmt.Sprintf("%s %s", cfg, mode), c})
					}
				}
			}
		}
	}
	// Deep reductions (K = 512 and 256-row experts: the cp.async pipelines wrap around their
	// stages several times in every GEMM), 256-column tiles.
	for i, cfg := range []moe.Config{
		{T: 256, H: 512, I: 256, E: 2, K: 2, DType: moe.BF16},
		{T: 256, H: 512, I: 256, E: 2, K: 2, DType: moe.FP16, Act: moe.GptOss, Layout: moe.Transposed, Bias: true},
		{T: 256, H: 512, I: 256, E: 2, K: 2, DType: moe.BF16, Layout: moe.Transposed, EP: moe.EP{World: 2, Rank: 1}},
		{T: 256, H: 512, I: 256, E: 2, K: 2, DType: moe.FP16, Bias: true, EP: moe.EP{World: 2, Rank: 0}},
	} {
		if quick && i%2 == 1 {
			continue
		}
		c, err := mkCase(cfg, uint64(3000+i), moe.Normal, cfg.EP.World > 1)
		if err != nil {
			return nil, err
		}
		out = append(out, stCase{fmt.Sprintf("%s deep", cfg), c})
	}
	// Non-finite inputs, tensor-core and CUDA-core paths.
	for _, d := range []moe.DType{moe.BF16, moe.FP32} {
		cfg := moe.Config{T: 40, H: 32, I: 16, E: 4, K: 2, DType: d, EP: moe.EP{World: 2, Rank: 0}}
		c, err := mkCase(cfg, 77, moe.Normal, true)
		if err != nil {
			return nil, err
		}
		c.NonFinite = true
		c.X[3], c.X[100] = math.NaN(), math.Inf(1)
		c.W1[5] = math.Inf(-1)
		c.DY[7] = math.NaN()
		out = append(out, stCase{fmt.Sprintf("%s nonfinite", cfg), c})
	}
	return out, nil
}

// faultCase has sentinels (EP 2, rank 1, global routing), an empty expert (local 3), bias,
// K = 4 and tensor-core sizes (for bf16), so every fault shows on it or its fp32 twin.
func faultCase(d moe.DType) (*moe.Case, error) {
	cfg := moe.Config{T: 64, H: 64, I: 32, E: 8, K: 4, EP: moe.EP{World: 2, Rank: 1}, DType: d, Bias: true}
	_, g, err := moe.RandomGlobalRouting(cfg, 5)
	if err != nil {
		return nil, err
	}
	for s, id := range g.IDs {
		if id == 8+3 {
			g.IDs[s] = 8 + 4
		}
	}
	r, err := moe.FromGlobal(cfg, g.IDs, g.Weights, g.Options)
	if err != nil {
		return nil, err
	}
	c, err := moe.Generate(cfg, r, 6, moe.Normal)
	if err != nil {
		return nil, err
	}
	c.Global = g
	return c, nil
}

// relErr returns ‖got−want‖₂/‖want‖₂ over elements finite in both, and the number of
// elements whose class (finite, NaN, +Inf, −Inf) differs.
func relErr(got, want []float32) (float64, int) {
	if len(got) != len(want) {
		return math.Inf(1), len(want)
	}
	var num, den float64
	bad := 0
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if class(g) != class(w) {
			bad++
			continue
		}
		if class(w) != 0 {
			continue
		}
		num += (g - w) * (g - w)
		den += w * w
	}
	if den == 0 {
		if num == 0 {
			return 0, bad
		}
		return math.Inf(1), bad
	}
	return math.Sqrt(num / den), bad
}

func class(x float64) int {
	switch {
	case math.IsNaN(x):
		return 1
	case math.IsInf(x, 1):
		return 2
	case math.IsInf(x, -1):
		return 3
	}
	return 0
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func resultTensors(r *gpu.Result) map[string][]float32 {
	return map[string][]float32{"y": r.Y, "dX": r.DX, "dW1": r.DW1, "dB1": r.DB1, "dW2": r.DW2, "dB2": r.DB2, "d_rw": r.DRW}
}

func sameResult(a, b *gpu.Result) (bool, string) {
	ta, tb := resultTensors(a), resultTensors(b)
	for _, n := range []string{"y", "dX", "dW1", "dB1", "dW2", "dB2", "d_rw"} {
		if !sameBits(ta[n], tb[n]) {
			return false, n
		}
	}
	return true, ""
}

// exactContracts checks docs/path.md's bitwise contracts on r.
func exactContracts(c *moe.Case, r *gpu.Result) string {
	E, K, H := c.E, c.K, c.H
	for t := 0; t < c.T; t++ {
		all := true
		for k := 0; k < K; k++ {
			if int(c.Routing.IDs[t*K+k]) < E {
				all = false
			}
		}
		if all {
			for h := 0; h < H; h++ {
				if r.Y[t*H+h] != 0 {
					return fmt.Sprintf("y[%d,%d] = %v for an all-sentinel token", t, h, r.Y[t*H+h])
				}
			}
		}
	}
	for s, id := range c.Routing.IDs {
		if int(id) == E && r.DRW[s] != 0 {
			return fmt.Sprintf("d_rw[%d] = %v for a sentinel slot", s, r.DRW[s])
		}
	}
	counts := make([]int, E)
	for _, id := range c.Routing.IDs {
		if int(id) < E {
			counts[id]++
		}
	}
	for e := 0; e < E; e++ {
		if counts[e] > 0 {
			continue
		}
		for j := 0; j < 2*c.I; j++ {
			for h := 0; h < H; h++ {
				if v := r.DW1[c.W1Index(e, j, h)]; v != 0 {
					return fmt.Sprintf("dW1[%d] has %v for an empty expert", e, v)
				}
			}
		}
		for h := 0; h < H; h++ {
			for j := 0; j < c.I; j++ {
				if v := r.DW2[c.W2Index(e, h, j)]; v != 0 {
					return fmt.Sprintf("dW2[%d] has %v for an empty expert", e, v)
				}
			}
		}
	}
	return ""
}

func selftest(w io.Writer, b, ref gpu.Backend, quick bool) int {
	ctx := context.Background()
	fails := 0
	cases, err := selftestCases(quick)
	if err != nil {
		fmt.Fprintf(w, "FAIL building cases: %v\n", err)
		return 1
	}
	start := time.Now()
	fmt.Fprintf(w, "%-70s %9s %6s %s\n", "case (vs "+ref.Name()+", signature poison)", "max rel", "tol", "result")
	for _, tc := range cases {
		c := tc.c
		o := gpu.RunOptions{Poison: gpu.PoisonSignature, PoisonSeed: 3, Stages: true}
		got, err := b.Run(ctx, c, o)
		if err != nil {
			fmt.Fprintf(w, "%-70s run error: %v\n", tc.name, err)
			fails++
			if _, ok := gpu.AsCaseError(err); ok {
				return fails // the backend may be gone
			}
			continue
		}
		want, err := ref.Run(ctx, c, o)
		if err != nil {
			fmt.Fprintf(w, "%-70s %s error: %v\n", tc.name, ref.Name(), err)
			fails++
			continue
		}
		var problems []string
		worst, worstName := 0.0, ""
		check := func(name string, g, wv []float32, exact bool) {
			if wv == nil && g == nil {
				return
			}
			if exact {
				if !sameBits(g, wv) {
					problems = append(problems, name+" not bitwise equal")
				}
				return
			}
			rel, bad := relErr(g, wv)
			if bad > 0 {
				problems = append(problems, fmt.Sprintf("%s: %d elements differ in class (NaN/Inf/finite)", name, bad))
			}
			if rel > worst {
				worst, worstName = rel, name
			}
			if rel > tolerance(c.DType) {
				problems = append(problems, fmt.Sprintf("%s rel err %.2e", name, rel))
			}
		}
		pl, _ := c.Plan()
		if got.Stages == nil || fmt.Sprint(got.Stages.Perm) != fmt.Sprint(pl.Perm) || fmt.Sprint(got.Stages.Offsets) != fmt.Sprint(pl.Offsets) {
			problems = append(problems, "routing (perm/offsets) differs")
		}
		for _, t := range []struct {
			name  string
			g, wv []float32
			exact bool
		}{{"y", got.Y, want.Y, false}, {"dX", got.DX, want.DX, false}, {"dW1", got.DW1, want.DW1, false},
			{"dB1", got.DB1, want.DB1, false}, {"dW2", got.DW2, want.DW2, false}, {"dB2", got.DB2, want.DB2, false},
			{"d_rw", got.DRW, want.DRW, false}} {
			check(t.name, t.g, t.wv, t.exact)
		}
		if gs, ws := got.Stages, want.Stages; gs != nil && !c.NonFinite {
			check("xs", gs.Xs, ws.Xs, true)
			check("d_o", gs.DO, ws.DO, true)
			check("h1", gs.H1, ws.H1, false)
			check("act", gs.Act, ws.Act, false)
			check("h2", gs.H2, ws.H2, false)
			check("o", gs.O, ws.O, false)
			check("d_h2", gs.DH2, ws.DH2, false)
			check("d_h1", gs.DH1, ws.DH1, false)
			check("d_xs", gs.DXs, ws.DXs, false)
		}
		if msg := exactContracts(c, got); msg != "" && !c.NonFinite { // NaN in dY reaches d_rw through 0·NaN
			problems = append(problems, "contract: "+msg)
		}
		// Bitwise invariance under every poison policy and across runs (stale twice).
		for _, p := range append(append([]gpu.Poison(nil), gpu.Poisons()...), gpu.PoisonStale) {
			r2, err := b.Run(ctx, c, gpu.RunOptions{Poison: p, PoisonSeed: 11})
			if err != nil {
				problems = append(problems, fmt.Sprintf("poison %s: %v", p, err))
				break
			}
			if ok, where := sameResult(got, r2); !ok {
				problems = append(problems, fmt.Sprintf("poison %s changes %s", p, where))
			}
		}
		status := "ok"
		if len(problems) > 0 {
			status = fmt.Sprintf("FAIL %v", problems)
			fails++
		}
		fmt.Fprintf(w, "%-70s %9.2e %6.0e %s (%s)\n", tc.name, worst, tolerance(c.DType), status, worstName)
	}
	fmt.Fprintf(w, "correctness: %d cases in %v\n", len(cases), time.Since(start).Round(time.Millisecond))
	fails += faultCheck(w, b, ref)
	return fails
}

// faultCheck runs every fault on faultCase (bf16 and fp32 variants) on b and on ref: b must
// agree with ref under the fault (same tolerance, same NaN/Inf classes), and the fault must
// change b's result bitwise on at least one variant (nondeterministic-sum: between two
// runs). Crash runs last (it loses the context) and must be a Crashed CaseError.
func faultCheck(w io.Writer, b, ref gpu.Backend) int {
	ctx := context.Background()
	var cases []*moe.Case
	for _, d := range []moe.DType{moe.BF16, moe.FP32} {
		c, err := faultCase(d)
		if err != nil {
			fmt.Fprintf(w, "FAIL fault case: %v\n", err)
			return 1
		}
		cases = append(cases, c)
	}
	o := gpu.RunOptions{Poison: gpu.PoisonSignature}
	clean := make([]*gpu.Result, len(cases))
	for i, c := range cases {
		r, err := b.Run(ctx, c, o)
		if err != nil {
			fmt.Fprintf(w, "FAIL clean run of the fault case: %v\n", err)
			return 1
		}
		clean[i] = r
	}
	fails := 0
	fmt.Fprintf(w, "%-22s %s\n", "fault", "on "+cases[0].Config.String()+" and its fp32 twin: agreement with "+ref.Name()+"; tensors changed")
	for _, fi := range gpu.Catalog() {
		if fi.Fault == gpu.Crash {
			continue
		}
		fo := o
		fo.Faults = gpu.Faults(fi.Fault)
		var changed, problems []string
		for i, c := range cases {
			r, err := b.Run(ctx, c, fo)
			if err != nil {
				problems = append(problems, fmt.Sprintf("run: %v", err))
				if _, ok := gpu.AsCaseError(err); ok {
					fmt.Fprintf(w, "%-22s FAIL %v\n", fi.Name, problems)
					return fails + 1
				}
				continue
			}
			base := clean[i]
			if fi.Fault == gpu.NondeterministicSum {
				if base, err = b.Run(ctx, c, fo); err != nil {
					problems = append(problems, fmt.Sprintf("second run: %v", err))
					continue
				}
			}
			rt, bt := resultTensors(r), resultTensors(base)
			for _, n := range []string{"y", "dX", "dW1", "dB1", "dW2", "dB2", "d_rw"} {
				if !sameBits(rt[n], bt[n]) {
					changed = append(changed, c.DType.String()+":"+n)
				}
			}
			want, err := ref.Run(ctx, c, fo)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", ref.Name(), err))
				continue
			}
			wt := resultTensors(want)
			for _, n := range []string{"y", "dX", "dW1", "dB1", "dW2", "dB2", "d_rw"} {
				rel, bad := relErr(rt[n], wt[n])
				if bad > 0 || rel > tolerance(c.DType) {
					problems = append(problems, fmt.Sprintf("%s %s vs %s: rel %.1e, %d class mismatches", c.DType, n, ref.Name(), rel, bad))
				}
			}
		}
		switch {
		case len(problems) > 0:
			fmt.Fprintf(w, "%-22s FAIL %v (changed %v)\n", fi.Name, problems, changed)
			fails++
		case len(changed) == 0:
			fmt.Fprintf(w, "%-22s FAIL result unchanged\n", fi.Name)
			fails++
		default:
			fmt.Fprintf(w, "%-22s ok: changes %v\n", fi.Name, changed)
		}
	}
	fo := o
	fo.Faults = gpu.Faults(gpu.Crash)
	_, err := b.Run(ctx, cases[0], fo)
	if ce, ok := gpu.AsCaseError(err); ok && ce.Kind == gpu.Crashed {
		fmt.Fprintf(w, "%-22s ok: %v\n", "crash", err)
	} else {
		fmt.Fprintf(w, "%-22s FAIL: err = %v, want a crash CaseError\n", "crash", err)
		fails++
	}
	return fails
}

// sanitizeRun runs a few small cases once each, every kernel variant among them (tensor-core
// bf16 and fp16 in both layouts and both column tiles, CUDA-core fp32, EP with global routing,
// bias, the fault case), for compute-sanitizer. No faults: crash would be reported as the error it is.
func sanitizeRun(w io.Writer, b gpu.Backend) error {
	ctx := context.Background()
	var cases []*moe.Case
	for i, cfg := range []moe.Config{
		{T: 48, H: 32, I: 16, E: 4, K: 2, DType: moe.BF16, Bias: true},
		{T: 40, H: 40, I: 24, E: 3, K: 3, DType: moe.FP16, Layout: moe.Transposed, Act: moe.GptOss, EP: moe.EP{World: 2, Rank: 1}},
		{T: 21, H: 10, I: 6, E: 3, K: 2, DType: moe.FP32, Act: moe.GptOss, Bias: true, EP: moe.EP{World: 3, Rank: 2}},
		{T: 64, H: 136, I: 72, E: 3, K: 2, DType: moe.BF16, Bias: true, EP: moe.EP{World: 2, Rank: 0}}, // 256-column tiles
	} {
		c, err := mkCase(cfg, uint64(500+i), moe.Normal, cfg.EP.World > 1)
		if err != nil {
			return err
		}
		cases = append(cases, c)
	}
	fc, err := faultCase(moe.BF16)
	if err != nil {
		return err
	}
	cases = append(cases, fc)
	for _, c := range cases {
		if _, err := b.Run(ctx, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true}); err != nil {
			return fmt.Errorf("%s: %w", c.Config, err)
		}
		fmt.Fprintf(w, "sanitize: ran %s\n", c.Config)
	}
	return nil
}

// clientCheck launches this executable as a worker of backend through gpu/worker and runs a
// case, a crash-fault case and the first case again: exactly one Crashed CaseError, a
// restarted worker, and the same result bits before and after.
func clientCheck(w io.Writer, backend string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	b, err := worker.New(worker.Options{Command: []string{exe, "-backend", backend}, Timeout: 2 * time.Minute})
	if err != nil {
		return err
	}
	defer b.Close()
	c, err := faultCase(moe.BF16)
	if err != nil {
		return err
	}
	ctx := context.Background()
	o := gpu.RunOptions{Poison: gpu.PoisonSignature}
	first, err := b.Run(ctx, c, o)
	if err != nil {
		return fmt.Errorf("first case: %w", err)
	}
	t0 := time.Now()
	_, err = b.Run(ctx, c, gpu.RunOptions{Faults: gpu.Faults(gpu.Crash)})
	ce, ok := gpu.AsCaseError(err)
	if !ok || ce.Kind != gpu.Crashed {
		return fmt.Errorf("crash case: err = %v, want a Crashed CaseError", err)
	}
	fmt.Fprintf(w, "client-check: crash case -> %v (%v)\n", err, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	again, err := b.Run(ctx, c, o)
	if err != nil {
		return fmt.Errorf("case after the crash: %w", err)
	}
	if same, where := sameResult(first, again); !same {
		return fmt.Errorf("case after the crash differs in %s", where)
	}
	name, dev, restarts, _ := worker.Info(b)
	fmt.Fprintf(w, "client-check: ok: worker %s on %s restarted %d time(s); next case identical (%v incl. restart)\n",
		name, dev, restarts, time.Since(t0).Round(time.Millisecond))
	return nil
}

// sanitizeCorpus runs every case of the corpus directories (comma list; empty: none) once per
// poison policy the case names (signature when it names none), with stages, for
// compute-sanitizer. A case the backend refuses or crashes on is an error.
func sanitizeCorpus(w io.Writer, b gpu.Backend, dirs string) error {
	if dirs == "" {
		return nil
	}
	ctx := context.Background()
	for _, dir := range strings.Split(dirs, ",") {
		es, err := corpus.LoadDir(strings.TrimSpace(dir))
		if err != nil {
			return err
		}
		for _, e := range es {
			poisons := e.Poisons
			if len(poisons) == 0 {
				poisons = []gpu.Poison{gpu.PoisonSignature}
			}
			for _, p := range poisons {
				if _, err := b.Run(ctx, e.Case, gpu.RunOptions{Poison: p, Stages: true}); err != nil {
					return fmt.Errorf("%s/%s (poison %s): %w", dir, e.Name, p, err)
				}
				fmt.Fprintf(w, "sanitize: ran %s/%s (%s, poison %s)\n", dir, e.Name, e.Case.Config, p)
			}
		}
	}
	return nil
}
