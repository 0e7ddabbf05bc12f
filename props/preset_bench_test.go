package props_test

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/presets"
	"github.com/moecheck/moecheck/props"
)

// presetTokens is the token count of BenchmarkPresetCase: by default a real model layer's
// shape at a batch CI can afford; -preset-tokens 4096 measures a real batch (the README's
// figures at T = 4,096 and 16,384 come from `moecheck check --preset`, see README "Figures").
var presetTokens = flag.Int("preset-tokens", 64, "BenchmarkPresetCase: tokens T of the preset case")

// BenchmarkPresetCase measures the matches property (forward and backward, stage-local and
// end to end) of the Qwen3-30B-A3B EP-8 rank-3 preset case on the sim backend: the shape of
// issue 14's "real shapes in seconds" at a small token count. Reported as rows/s (routed rows
// S = T·K checked per wall second) and peak-heap-bytes (the Go heap's high-water mark over
// the run, runtime/metrics), and cpu-s/op (user + system CPU seconds per check, which unlike
// wall time do not grow when other processes share the cores).
func BenchmarkPresetCase(b *testing.B) {
	p, err := presets.ByName("qwen3-30b-a3b")
	if err != nil {
		b.Fatal(err)
	}
	match, err := props.ByName("matches")
	if err != nil {
		b.Fatal(err)
	}
	for _, T := range []int{*presetTokens} {
		o := presets.CaseOptions{EP: 8, Rank: 3, T: T, Seed: 1}
		b.Run(fmt.Sprintf("preset=%s/ep=8/rank=3/T=%d/procs=%d", p.Name, T, runtime.GOMAXPROCS(0)), func(b *testing.B) {
			c, err := p.Case(o)
			if err != nil {
				b.Fatal(err)
			}
			rows := 0
			peak := heapPeak{}
			peak.reset()
			cpu0 := cpuSeconds()
			for b.Loop() {
				env := &props.Env{Backend: sim.New(sim.Options{})}
				outs, failed, err := props.CheckTrial(context.Background(), env, []props.Property{match}, props.Trial{Case: c, Poison: gpu.PoisonSignature})
				if err != nil {
					b.Fatal(err)
				}
				if failed != nil || len(outs) != 1 || !outs[0].Pass {
					b.Fatalf("the correct path failed: %+v", failed)
				}
				rows += c.S()
				peak.sample()
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(peak.max), "peak-heap-bytes")
			if cpu := cpuSeconds() - cpu0; cpu > 0 {
				b.ReportMetric(cpu/float64(b.N), "cpu-s/op")
			}
		})
	}
}

// heapPeak tracks the live heap's high-water mark (sampled after each run, plus the GC's
// own record of the heap goal, which bounds the peak between samples).
type heapPeak struct{ max uint64 }

func (h *heapPeak) reset() { runtime.GC(); h.max = 0 }

func (h *heapPeak) sample() {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	metrics.Read(s)
	if v := s[0].Value.Uint64(); v > h.max {
		h.max = v
	}
}
