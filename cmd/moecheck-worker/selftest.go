package main

import (
	"context"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/rawcase"
	"github.com/moecheck/moecheck/internal/triage"
	"github.com/moecheck/moecheck/internal/worker"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
	"github.com/moecheck/moecheck/props"
)

// The self-test is a smoke test for a new device. Every judgement is the oracle's: each
// case's result (with stages, signature poison) must pass oracle.Check — the stage-local
// enclosures, the routing plan and the exact contracts of docs/path.md — and the results
// under every other poison policy and across runs must equal it (oracle.CompareBitwise).
// Every fault of fault.Catalog() must change the result and draw the same oracle verdict as
// gpu/sim under the same fault (pass or fail, and the same first failing stage).

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
	// Zero tails: gpu/cuda leaves the +0 rows of the sentinel tail of results of 16 MiB or more
	// on the device when it runs on bits (the run on values vs the run on bits below compares
	// them bit for bit): an EP-8 rank whose stages are 32 MiB.
	{
		cfg := moe.Config{T: 1024, H: 2048, I: 256, E: 2, K: 8, DType: moe.BF16, EP: moe.EP{World: 8, Rank: 5}}
		c, err := mkCase(cfg, 4000, moe.Normal, true)
		if err != nil {
			return nil, err
		}
		out = append(out, stCase{fmt.Sprintf("%s zero tails", cfg), c})
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

// sameResult reports whether two results are identical in every bit of every output (for
// the client check: the same case before and after a worker restart), naming the first
// tensor that differs.
func sameResult(a, b *gpu.Result) (bool, string) {
	for _, t := range moe.Outputs() {
		if !sameBits(a.Tensor(t), b.Tensor(t)) {
			return false, t.String()
		}
	}
	return true, ""
}

// sameVerdict compares the oracle's verdicts on two results of one case: both must pass, or
// both fail with the same first failing stage. It returns "" when they agree.
func sameVerdict(c *moe.Case, got, want *gpu.Result) string {
	vg, err := oracle.Check(c, got, oracle.Options{SkipStages: true})
	if err != nil {
		return err.Error()
	}
	vw, err := oracle.Check(c, want, oracle.Options{SkipStages: true})
	if err != nil {
		return err.Error()
	}
	if vg.Pass != vw.Pass {
		return fmt.Sprintf("oracle: %s, but %s", vg.Summary(), vw.Summary())
	}
	if vg.Pass {
		return ""
	}
	sg, _, _, _ := triage.FirstStage(vg.Failures)
	sw, _, _, _ := triage.FirstStage(vw.Failures)
	if sg != sw {
		return fmt.Sprintf("first failing stage %s, want %s", sg, sw)
	}
	return ""
}

func selftest(w io.Writer, b, ref gpu.Backend, quick, stageGuardChecks bool) int {
	ctx := context.Background()
	fails := 0
	cases, err := selftestCases(quick)
	if err != nil {
		fmt.Fprintf(w, "FAIL building cases: %v\n", err)
		return 1
	}
	start := time.Now()
	var ck oracle.Checker
	fmt.Fprintf(w, "%-70s %9s %s\n", "case (oracle, signature poison, stages)", "max e/b", "result")
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
		var problems []string
		v, err := ck.Check(c, got, oracle.Options{})
		if err != nil {
			fmt.Fprintf(w, "%-70s oracle error: %v\n", tc.name, err)
			fails++
			continue
		}
		if got.Stages == nil {
			problems = append(problems, "no stages reported")
		}
		for _, f := range v.Failures {
			problems = append(problems, f.String())
		}
		// Bitwise invariance under every poison policy and across runs (stale twice).
		for _, p := range append(append([]gpu.Poison(nil), gpu.Poisons()...), gpu.PoisonStale) {
			r2, err := b.Run(ctx, c, gpu.RunOptions{Poison: p, PoisonSeed: 11})
			if err != nil {
				problems = append(problems, fmt.Sprintf("poison %s: %v", p, err))
				break
			}
			for _, f := range oracle.CompareBitwise(c, got, r2, fmt.Sprintf("poison signature vs %s", p)) {
				problems = append(problems, f.String())
			}
		}
		// A backend that runs cases as their bits (the worker serves the CUDA lanes so) must
		// give the bits of the run on values.
		if br, ok := b.(rawcase.Runner); ok {
			k, err := rawcase.Validate(rawcase.Encode(c), moe.Limits{})
			var rb *rawcase.Result
			if err == nil {
				rb, err = br.RunBits(ctx, k, o, 0)
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("run on bits: %v", err))
			} else {
				for _, f := range oracle.CompareBitwise(c, got, rb.Decode(c.DType), "run on values vs run on bits") {
					problems = append(problems, f.String())
				}
			}
		}
		status := "ok"
		if len(problems) > 0 {
			status = fmt.Sprintf("FAIL %v", problems)
			fails++
		}
		fmt.Fprintf(w, "%-70s %9.2e %s\n", tc.name, v.MaxRatio(), status)
	}
	fmt.Fprintf(w, "correctness: %d cases in %v\n", len(cases), time.Since(start).Round(time.Millisecond))
	fails += guardCheck(w, b, stageGuardChecks)
	fails += faultCheck(w, b, ref)
	return fails
}

// guardProber is the CUDA lane's out-of-bounds write injection (gpu/cuda Backend.GuardProbe).
type guardProber interface {
	GuardProbe(ctx context.Context, c *moe.Case, o gpu.RunOptions, stage, buf string, once bool) error
}

// driverCounter is the CUDA lane's driver-call counter (gpu/cuda Backend.DriverCalls).
type driverCounter interface{ DriverCalls() uint64 }

// guardCheck proves the guard zones on a backend that can inject an out-of-bounds write
// (the CUDA lane): one byte past buffer h1 written after stage gemm1 in every run must be
// reported as a Crashed CaseError naming gemm1 and h1 (by the re-run with a check after
// every stage, or directly with -stage-guard-checks); written in the first run only, the
// end-of-run check must still report it, saying that the re-run did not reproduce it; the
// lane must then run the case again bitwise as before. It also prints the driver calls of
// one run of the fault case. Backends without the probe skip it.
func guardCheck(w io.Writer, b gpu.Backend, stageGuardChecks bool) int {
	ctx := context.Background()
	c, err := faultCase(moe.BF16)
	if err != nil {
		fmt.Fprintf(w, "FAIL fault case: %v\n", err)
		return 1
	}
	o := gpu.RunOptions{Poison: gpu.PoisonSignature}
	if dc, ok := b.(driverCounter); ok {
		for _, stages := range []bool{false, true} {
			o2 := o
			o2.Stages = stages
			if _, err := b.Run(ctx, c, o2); err != nil { // warm the pool
				fmt.Fprintf(w, "%-22s FAIL run: %v\n", "driver-calls", err)
				return 1
			}
			n0 := dc.DriverCalls()
			if _, err := b.Run(ctx, c, o2); err != nil {
				fmt.Fprintf(w, "%-22s FAIL run: %v\n", "driver-calls", err)
				return 1
			}
			fmt.Fprintf(w, "%-22s %d per run of %s (stages %v, guard checks after every stage %v)\n", "driver-calls",
				dc.DriverCalls()-n0, c.Config, stages, stageGuardChecks)
		}
	}
	p, ok := b.(guardProber)
	if !ok {
		fmt.Fprintf(w, "%-22s skipped: %s cannot inject an out-of-bounds write\n", "guard-zones", b.Name())
		return 0
	}
	before, err := b.Run(ctx, c, o)
	if err != nil {
		fmt.Fprintf(w, "%-22s FAIL clean run: %v\n", "guard-zones", err)
		return 1
	}
	fails := 0
	want := func(label string, err error, parts ...string) {
		ce, ok := gpu.AsCaseError(err)
		if !ok || ce.Kind != gpu.Crashed {
			fmt.Fprintf(w, "%-22s FAIL %s: err = %v, want a Crashed CaseError\n", "guard-zones", label, err)
			fails++
			return
		}
		for _, s := range parts {
			if !strings.Contains(ce.Detail, s) {
				fmt.Fprintf(w, "%-22s FAIL %s: %q does not say %q\n", "guard-zones", label, ce.Detail, s)
				fails++
				return
			}
		}
		fmt.Fprintf(w, "%-22s ok: %s: %v\n", "guard-zones", label, err)
	}
	want("every run", p.GuardProbe(ctx, c, o, "gemm1", "h1", false),
		"after stage gemm1: guard zone after buffer h1", "damaged at byte 12")
	if stageGuardChecks {
		want("first run only", p.GuardProbe(ctx, c, o, "gemm1", "h1", true),
			"after stage gemm1: guard zone after buffer h1", "damaged at byte 12")
	} else {
		want("first run only", p.GuardProbe(ctx, c, o, "gemm1", "h1", true),
			"at the end of the run: guard zone after buffer h1", "damaged at byte 12", "stage not reproduced")
	}
	after, err := b.Run(ctx, c, o)
	switch {
	case err != nil:
		fmt.Fprintf(w, "%-22s FAIL run after the probes: %v\n", "guard-zones", err)
		fails++
	default:
		if same, where := sameResult(before, after); !same {
			fmt.Fprintf(w, "%-22s FAIL run after the probes differs in %s\n", "guard-zones", where)
			fails++
		}
	}
	return fails
}

// faultCheck runs every fault on faultCase (bf16 and fp32 variants) on b and on ref: the
// oracle's verdict on b's result must agree with its verdict on ref's (both pass, or both
// fail with the same first failing stage), and the fault must change b's result bitwise on
// at least one variant (nondeterministic-sum: between two runs). Crash runs last (it loses
// the context) and must be a Crashed CaseError.
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
	for _, fi := range fault.Catalog() {
		if fi.Fault == fault.Crash {
			continue
		}
		fo, fs := o, fault.Of(fi.Fault)
		// run runs c with the fault on be; stale-empty-wgrad shows only in a case run after
		// another one on the same instance, so it first runs the history property's prior.
		run := func(be gpu.Backend, c *moe.Case) (*gpu.Result, error) {
			if fi.Fault == fault.StaleEmptyWgrad {
				p, err := props.PriorOf(props.Trial{Case: c, Poison: fo.Poison})
				if err != nil {
					return nil, err
				}
				if _, err := fault.Run(ctx, be, p.Case, fo, fs); err != nil {
					return nil, err
				}
			}
			return fault.Run(ctx, be, c, fo, fs)
		}
		var changed, problems []string
		skipped := ""
		for i, c := range cases {
			r, err := run(b, c)
			if u, ok := gpu.IsUnsupported(err); ok {
				skipped = u.Reason
				break
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("run: %v", err))
				if _, ok := gpu.AsCaseError(err); ok {
					fmt.Fprintf(w, "%-22s FAIL %v\n", fi.Name, problems)
					return fails + 1
				}
				continue
			}
			base := clean[i]
			if fi.Fault == fault.NondeterministicSum {
				if base, err = fault.Run(ctx, b, c, fo, fs); err != nil {
					problems = append(problems, fmt.Sprintf("second run: %v", err))
					continue
				}
			}
			for _, t := range moe.Outputs() {
				if !sameBits(r.Tensor(t), base.Tensor(t)) {
					changed = append(changed, c.DType.String()+":"+t.String())
				}
			}
			want, err := run(ref, c)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", ref.Name(), err))
				continue
			}
			if msg := sameVerdict(c, r, want); msg != "" {
				problems = append(problems, fmt.Sprintf("%s: %s (vs %s)", c.DType, msg, ref.Name()))
			}
		}
		switch {
		case skipped != "":
			fmt.Fprintf(w, "%-22s skipped: the backend does not reproduce it (%s)\n", fi.Name, skipped)
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
	_, err := fault.Run(ctx, b, cases[0], o, fault.Of(fault.Crash))
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
	// A run on bits whose stages are 32 MiB: the CUDA lane measures their zero tails on the
	// device and downloads the bytes before them only (zero_extent).
	if br, ok := b.(rawcase.Runner); ok {
		cfg := moe.Config{T: 1024, H: 2048, I: 64, E: 1, K: 8, DType: moe.BF16, EP: moe.EP{World: 8, Rank: 2}}
		c, err := mkCase(cfg, 600, moe.Normal, true)
		if err != nil {
			return err
		}
		k, err := rawcase.Validate(rawcase.Encode(c), moe.Limits{})
		if err != nil {
			return err
		}
		if _, err := br.RunBits(ctx, k, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true}, 0); err != nil {
			return fmt.Errorf("%s on bits: %w", cfg, err)
		}
		fmt.Fprintf(w, "sanitize: ran %s on bits (zero tails)\n", cfg)
	}
	return nil
}

// clientCheck launches this executable as a worker of backend through internal/worker and runs a
// case, a crash-fault case and the first case again: exactly one Crashed CaseError, a
// restarted worker, and the same result bits before and after.
func clientCheck(w io.Writer, backend string, lanes int) error {
	if lanes > 1 {
		return clientCheckLanes(w, backend, lanes)
	}
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
	_, err = fault.Run(ctx, b, c, gpu.RunOptions{}, fault.Of(fault.Crash))
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
