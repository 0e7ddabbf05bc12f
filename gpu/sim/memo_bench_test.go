package sim

import (
	"context"
	"fmt"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// BenchmarkRunMemo measures what poison-invariance asks of a Backend: one case run under
// every poison policy in turn (the stale one twice), with the stage memo (memo=on) and
// without it (memo=off), in cases/s and cpu-s/op per sequence.
func BenchmarkRunMemo(b *testing.B) {
	for _, cfg := range []moe.Config{
		{T: 4, H: 8, I: 8, E: 4, K: 2, DType: moe.BF16},
		{T: 16, H: 32, I: 16, E: 4, K: 2, DType: moe.BF16, EP: moe.EP{World: 2}},
		{T: 64, H: 128, I: 64, E: 8, K: 4, DType: moe.BF16},
		{T: 256, H: 256, I: 128, E: 8, K: 4, DType: moe.BF16, EP: moe.EP{World: 4, Rank: 1}},
	} {
		for _, on := range []bool{false, true} {
			name := fmt.Sprintf("T=%d/H=%d/I=%d/E=%d/K=%d/W=%d/memo=%v", cfg.T, cfg.H, cfg.I, cfg.E, cfg.K, cfg.EP.WorldSize(), map[bool]string{false: "off", true: "on"}[on])
			b.Run(name, func(b *testing.B) {
				c := makeCase(b, cfg, routeRandom, moe.Normal, 1)
				be := New(Options{Workers: 1})
				be.noMemo = !on
				policies := append(gpu.Poisons(), gpu.PoisonStale)
				ctx := context.Background()
				var cpu0 float64
				for b.Loop() {
					if cpu0 == 0 {
						cpu0 = cpuSeconds()
					}
					be.Forget() // a trial: its first Run computes
					for i, p := range policies {
						if _, err := be.Run(ctx, c, gpu.RunOptions{Poison: p, PoisonSeed: uint64(i)}); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cases/s")
				b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/op")
			})
		}
	}
}
