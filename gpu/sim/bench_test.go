package sim

import (
	"context"
	"fmt"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// BenchmarkRun measures whole Runs (forward and backward, zero poison, no faults) and reports
// cases/s and GFLOP/s, counting the six GEMMs' 18·R·H·I multiply-adds as two flops each
// (R real rows: forward 2·R·H·2I + 2·R·I·H, backward twice that).
func BenchmarkRun(b *testing.B) {
	for _, cfg := range []moe.Config{
		{T: 4, H: 8, I: 8, E: 4, K: 2, DType: moe.BF16},
		{T: 64, H: 128, I: 64, E: 8, K: 4, DType: moe.BF16},
		{T: 256, H: 256, I: 128, E: 8, K: 4, DType: moe.BF16},
	} {
		b.Run(fmt.Sprintf("T=%d/H=%d/I=%d/E=%d/K=%d", cfg.T, cfg.H, cfg.I, cfg.E, cfg.K), func(b *testing.B) {
			c := makeCase(b, cfg, routeLocal, moe.Normal, 1)
			p, err := c.Plan()
			if err != nil {
				b.Fatal(err)
			}
			be := New(Options{})
			ctx := context.Background()
			for b.Loop() {
				if _, err := be.Run(ctx, c, gpu.RunOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/sec, "cases/s")
			b.ReportMetric(18*float64(p.Rows)*float64(cfg.H)*float64(cfg.I)*float64(b.N)/sec/1e9, "GFLOP/s")
		})
	}
}
