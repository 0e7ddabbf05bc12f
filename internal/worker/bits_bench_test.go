package worker

import (
	"context"
	"encoding/binary"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/rawcase"
	"github.com/moecheck/moecheck/moe"
)

// echoBits is echoDevice as a rawcase.Runner, as gpu/cuda's RunBits is: the request's bits
// copied to the upload buffer, the result slices of the download buffer (DRW gathered).
type echoBits struct {
	fakeBackend
	dev *echoDevice
}

func (b echoBits) RunBits(_ context.Context, k rawcase.Checked, o gpu.RunOptions, _ fault.Set) (*rawcase.Result, error) {
	c := k.Case()
	cfg := c.Config
	ts := [][]byte{c.X, c.DY, c.W1, c.W2, c.B1, c.B2, c.RW}
	n := 0
	for _, v := range ts {
		n += len(v)
	}
	up := b.dev.grow(&b.dev.up, n)
	at := 0
	for _, v := range ts {
		at += copy(up[at:], v)
	}
	down := b.dev.grow(&b.dev.down, n+stageBytes(cfg, o))
	copy(down, up)
	r := &rawcase.Result{}
	at = 0
	for i, t := range []moe.Tensor{moe.TensorY, moe.TensorDX, moe.TensorDW1, moe.TensorDW2, moe.TensorDB1, moe.TensorDB2} {
		if ts[i] != nil {
			r.Set(t, down[at:at+len(ts[i])])
		}
		at += len(ts[i])
	}
	w := cfg.DType.Bits() / 8
	drw := make([]byte, len(c.RW)) // gathered to slot order (identity here)
	for s := range cfg.S() {
		copy(drw[s*w:(s+1)*w], down[at+s*w:at+(s+1)*w])
	}
	r.Set(moe.TensorDRW, drw)
	at += len(c.RW)
	if o.Stages {
		r.Set(moe.TensorPerm, make([]byte, 4*cfg.S()))
		r.Set(moe.TensorOffsets, binary.LittleEndian.AppendUint32(make([]byte, 4*(cfg.E-1)), 0))
		for _, t := range moe.StageTensors() {
			k := cfg.Len(t) * w
			for i := 0; i < k; i += len(c.X) {
				copy(down[at+i:at+k], c.X)
			}
			r.Set(t, down[at:at+k])
			at += k
		}
	}
	return r, nil
}

// benchBits is the round-trip benchmark's bits backend ("bits"), nil for another name.
func benchBits(mode string) gpu.Backend {
	if mode == "bits" {
		return echoBits{dev: &echoDevice{}}
	}
	return nil
}
