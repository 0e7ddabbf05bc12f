package worker

import (
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
)

// TestResultLimitFitsStages: the client's payload bound counted 4I stage columns per row
// where the path has 6I (h1 and d_h1 2I each, act and d_act I each), so a correct worker's
// result with stages for a case with I > H/2 was refused as a protocol error.
func TestResultLimitFitsStages(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  moe.Config
	}{
		{"wide-I/fp32", moe.Config{T: 16, H: 8, I: 64, E: 3, K: 2, DType: moe.FP32, Bias: true, Act: moe.SwiGLU}},
		{"wide-I/bf16/ep", moe.Config{T: 9, H: 4, I: 30, E: 4, K: 3, DType: moe.BF16, Act: moe.GptOss, Layout: moe.Transposed, EP: moe.EP{World: 2, Rank: 1}}},
		{"wide-H/fp16", moe.Config{T: 7, H: 64, I: 4, E: 2, K: 2, DType: moe.FP16, Bias: true, Act: moe.SwiGLU}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := casetest.CaseSeeds(t, tc.cfg, 3, 5)
			res := casetest.SimRun(t, c, gpu.RunOptions{Poison: gpu.PoisonNaN, Stages: true})
			f := EncodeResult(1, c.Config, res)
			if got, limit := int64(len(f.Payload)), maxResultBytes(c.Config); got > limit {
				t.Fatalf("a correct result with stages has %d payload bytes, over the client's limit %d", got, limit)
			}
		})
	}
}
