package worker

import (
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// streamResult is a Result with stages for cfg, every tensor filled with distinct
// dtype values (the bits of its index, rounded to the dtype).
func streamResult(cfg moe.Config) *gpu.Result {
	r := &gpu.Result{}
	k := uint32(0)
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			k++
			v[i] = cfg.DType.RoundFloat32(math.Float32frombits(0x3c000000 + k&0xffffff))
		}
		return v
	}
	for _, t := range moe.Outputs() {
		if !t.Bias() || cfg.Bias {
			r.SetTensor(t, fill(cfg.Len(t)))
		}
	}
	S := cfg.S()
	r.Stages = &gpu.Stages{}
	r.Stages.Perm, r.Stages.Offsets = make([]int32, S), make([]int32, cfg.E)
	for i := range r.Stages.Perm {
		r.Stages.Perm[i] = int32(i)
	}
	for _, t := range moe.StageTensors() {
		r.SetTensor(t, fill(cfg.Len(t)))
	}
	return r
}

// BenchmarkResultStream sends a result with stages of a Qwen3-30B-A3B EP-8 rank's shape
// (H 2048, I 768, 16 local experts, top-8, bf16; T tokens) through an OS pipe, the worker
// side encoding and the client side decoding it as they do in a run: path=stream is
// WriteResult and readReply (decoded as it arrives), path=frame the whole-frame path
// (EncodeResult, WriteFrame; readFrame, DecodeResult). Metrics: wire-MB/s (payload bytes
// through the pipe per second) and ns/value (per float decoded).
func BenchmarkResultStream(b *testing.B) {
	for _, T := range []int{256, 1024} {
		cfg := moe.Config{T: T, H: 2048, I: 768, E: 16, K: 8, EP: moe.EP{World: 8, Rank: 3}, DType: moe.BF16}
		res := streamResult(cfg)
		_, size := resultTensors(cfg, res)
		values := float64(size) / 2
		for _, path := range []string{"stream", "frame"} {
			b.Run(fmt.Sprintf("T=%d/path=%s", T, path), func(b *testing.B) {
				for b.Loop() {
					pr, pw, err := os.Pipe()
					if err != nil {
						b.Fatal(err)
					}
					growPipe(pr)
					done := make(chan error, 1)
					go func() {
						var err error
						if path == "stream" {
							err = WriteResult(pw, 1, cfg, res)
						} else {
							err = WriteFrame(pw, EncodeResult(1, cfg, res))
						}
						pw.Close()
						done <- err
					}()
					var got *gpu.Result
					if path == "stream" {
						_, got, err = readReply(pr, maxResultBytes(cfg), cfg)
					} else {
						var f *Frame
						if f, err = readFrame(pr, maxResultBytes(cfg)); err == nil {
							got, err = DecodeResult(f, cfg)
						}
					}
					pr.Close()
					if werr := <-done; err != nil || werr != nil || got == nil || len(got.Stages.DXs) != cfg.Len(moe.TensorDXs) {
						b.Fatalf("read %v, write %v", err, werr)
					}
				}
				s := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(float64(size)/1e6/s, "wire-MB/s")
				b.ReportMetric(s*1e9/values, "ns/value")
			})
		}
	}
}
