package rawcase

import (
	"encoding/binary"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Result is a run's result as little-endian bytes per tensor: the outputs and the stage
// tensors as storage bits of the case's dtype (DRW in slot order, as gpu.Result's), the plan
// (moe.TensorPerm, moe.TensorOffsets) as int32. A tensor not set is absent (the biases'
// gradients without biases; the stages when not asked for).
//
// A tensor may have a zero tail (SetPrefix): its bytes past Tensor's are zero, and a backend
// that knew it did not copy them (gpu/cuda leaves the sentinel tail's +0 rows on the device).
type Result struct {
	bits [moe.TensorCase][]byte
	size [moe.TensorCase]int // whole size of a tensor with a zero tail; 0: len(bits)
}

// Set sets tensor t's bytes (nil: absent). t must be an output, a stage tensor,
// TensorPerm or TensorOffsets.
func (r *Result) Set(t moe.Tensor, b []byte) {
	if t < moe.TensorCase {
		r.bits[t], r.size[t] = b, 0
	}
}

// SetPrefix sets tensor t to size bytes whose first len(b) are b and the rest zero (size ≥
// len(b); a smaller size is len(b)).
func (r *Result) SetPrefix(t moe.Tensor, b []byte, size int) {
	r.Set(t, b)
	if t < moe.TensorCase && size > len(b) {
		r.size[t] = size
	}
}

// Tensor returns tensor t's bytes, nil when absent: with a zero tail (SetPrefix), its first
// bytes only.
func (r *Result) Tensor(t moe.Tensor) []byte {
	if t < moe.TensorCase {
		return r.bits[t]
	}
	return nil
}

// Size returns tensor t's whole size in bytes: len(Tensor(t)) plus its zero tail.
func (r *Result) Size(t moe.Tensor) int {
	if t < moe.TensorCase && r.size[t] > 0 {
		return r.size[t]
	}
	return len(r.Tensor(t))
}

// Whole returns tensor t's bytes with its zero tail filled in: Tensor(t) itself when it has
// none, else a new slice.
func (r *Result) Whole(t moe.Tensor) []byte {
	b := r.Tensor(t)
	if n := r.Size(t); n > len(b) {
		w := make([]byte, n)
		copy(w, b)
		return w
	}
	return b
}

// Decode returns the gpu.Result r holds for a case of dtype d, its values exactly (NaN
// payloads kept: moe.DType.FromBits). Stages are present when the plan's perm is.
func (r *Result) Decode(d moe.DType) *gpu.Result {
	f := func(b []byte) []float32 {
		if b == nil {
			return nil
		}
		v := make([]float32, len(b)/(d.Bits()/8))
		d.Float32s(v, b)
		return v
	}
	i32 := func(b []byte) []int32 {
		v := make([]int32, len(b)/4)
		for i := range v {
			v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return v
	}
	res := &gpu.Result{}
	for _, t := range moe.Outputs() {
		res.SetTensor(t, f(r.Whole(t)))
	}
	if p := r.Tensor(moe.TensorPerm); p != nil {
		res.Stages = &gpu.Stages{Perm: i32(p), Offsets: i32(r.Tensor(moe.TensorOffsets))}
		for _, t := range moe.StageTensors() {
			res.SetTensor(t, f(r.Whole(t)))
		}
	}
	return res
}
