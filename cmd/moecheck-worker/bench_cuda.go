//go:build cuda

package main

import (
	"fmt"
	"io"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/cuda"
	"github.com/moecheck/moecheck/moe"
)

// benchCUDA times the path at Qwen3-30B-A3B rank shape (ANCHORS §5: H=2048, I=768, 16 local
// experts, top-8) with no sentinels (EP 1) and with 7/8 sentinels (EP 8, rank 3).
func benchCUDA(f *flags, b gpu.Backend, w io.Writer) error {
	cb, ok := b.(*cuda.Backend)
	if !ok {
		return fmt.Errorf("not the cuda backend")
	}
	T, H, I, E, K := f.benchT, 2048, 768, 16, 8
	tile := "tile=auto"
	if f.tileN != 0 || f.tileK != 0 {
		tile = fmt.Sprintf("tile=n%d,k%d", f.tileN, f.tileK)
	}
	fmt.Fprintf(w, "bench: T=%d H=%d I=%d E=%d K=%d bf16 swiglu standard, %d repeats after 3 warm-ups, CUDA events\n", T, H, I, E, K, f.reps)
	fmt.Fprintf(w, "%-16s %-10s %10s %10s\n", "config", "stage", "ms", "TFLOP/s")
	for _, ep := range []moe.EP{{World: 1}, {World: 8, Rank: 3}} {
		cfg := moe.Config{T: T, H: H, I: I, E: E, K: K, EP: ep, DType: moe.BF16}
		r, err := moe.RandomRouting(cfg, 42)
		if err != nil {
			return err
		}
		c, err := moe.Generate(cfg, r, 43, moe.Normal)
		if err != nil {
			return err
		}
		rows := 0
		for _, id := range r.IDs {
			if int(id) < E {
				rows++
			}
		}
		tm, err := cb.Bench(c, gpu.RunOptions{Poison: gpu.PoisonNaN}, 3, f.reps)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("ep=%d rows=%d", ep.WorldSize(), rows)
		R := float64(rows)
		flops := map[string]float64{
			"gemm1": 2 * R * float64(2*I) * float64(H), "gemm2": 2 * R * float64(H) * float64(I),
			"dgrad2": 2 * R * float64(H) * float64(I), "wgrad2": 2 * R * float64(H) * float64(I),
			"dgrad1": 2 * R * float64(2*I) * float64(H), "wgrad1": 2 * R * float64(2*I) * float64(H),
		}
		total := 0.0
		for _, s := range tm.Stages {
			tf := ""
			if fl, ok := flops[s.Stage]; ok {
				total += fl
				tf = fmt.Sprintf("%10.1f", fl/(s.Ms*1e-3)/1e12)
			}
			fmt.Fprintf(w, "%-16s %-10s %10.3f %s\n", name, s.Stage, s.Ms, tf)
		}
		fmt.Fprintf(w, "%-16s %-10s %10.3f %10.1f\n", name, "TOTAL", tm.TotalMs, total/(tm.TotalMs*1e-3)/1e12)
		fmt.Fprintf(w, "RESULT %s %s gemm1_ms=%.3f gemm1_tflops=%.1f fwdbwd_ms=%.3f fwdbwd_gemm_tflops=%.1f\n", tile, name,
			tm.Stage("gemm1"), flops["gemm1"]/(tm.Stage("gemm1")*1e-3)/1e12, tm.TotalMs, total/(tm.TotalMs*1e-3)/1e12)
	}
	return nil
}
