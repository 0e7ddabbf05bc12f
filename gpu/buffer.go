package gpu

import (
	"fmt"
	"math"

	"github.com/moecheck/moecheck/moe"
)

// Buffer names one device buffer of the path. Every buffer is taken from an uninitialized
// allocation and poisoned before the path runs; its id is the payload of its signature NaN.
type Buffer uint8

const (
	BufXs   Buffer = iota + 1 // gathered input, S×H
	BufH1                     // GEMM 1 output, S×2I
	BufAct                    // activation output, S×I
	BufH2                     // GEMM 2 output, S×H
	BufO                      // weighted rows, S×H
	BufY                      // combined output, T×H
	BufDO                     // gathered dY, S×H
	BufDRW                    // routing-weight gradient, S
	BufDH2                    // gradient of GEMM 2 output, S×H
	BufDAct                   // GEMM 2 dgrad, S×I
	BufDH1                    // activation backward, S×2I
	BufDXs                    // GEMM 1 dgrad, S×H
	BufDX                     // hidden-state gradient, T×H
	BufDW1                    // gate_up_proj gradient
	BufDB1                    // gate_up bias gradient
	BufDW2                    // down_proj gradient
	BufDB2                    // down bias gradient
	numBuffers
)

// bufferList lists every buffer.
var bufferList = func() []Buffer {
	b := make([]Buffer, 0, numBuffers-1)
	for i := BufXs; i < numBuffers; i++ {
		b = append(b, i)
	}
	return b
}()

// bufferTensors is the tensor each buffer holds (the d_rw buffer holds the sorted-order
// routing-weight gradient; the result's drw is its unsort).
var bufferTensors = [...]moe.Tensor{moe.TensorNone, moe.TensorXs, moe.TensorH1, moe.TensorAct, moe.TensorH2, moe.TensorO, moe.TensorY,
	moe.TensorDO, moe.TensorDRWSorted, moe.TensorDH2, moe.TensorDAct, moe.TensorDH1, moe.TensorDXs, moe.TensorDX,
	moe.TensorDW1, moe.TensorDB1, moe.TensorDW2, moe.TensorDB2}

// Tensor is the tensor buffer b holds (TensorNone for an invalid buffer).
func (b Buffer) Tensor() moe.Tensor {
	if b.Valid() {
		return bufferTensors[b]
	}
	return moe.TensorNone
}

// String is the name of the tensor the buffer holds.
func (b Buffer) String() string {
	if b.Valid() {
		return bufferTensors[b].String()
	}
	return fmt.Sprintf("buffer(%d)", uint8(b))
}

// SignatureNaN is the value every element of buffer b holds under PoisonSignature: the float32
// quiet NaN 0x7FC00000 with b's id in mantissa bits 16..21, which survive storage in every
// dtype (bf16 keeps float32 bits 16..22, fp16 bits 13..22). A backend that implements
// PoisonSignature fills b with it; if such a value reaches a result, the oracle names b as
// the buffer read where it was never written.
func (b Buffer) SignatureNaN() float32 { return math.Float32frombits(0x7FC00000 | uint32(b)<<16) }

// Valid reports whether b names a buffer.
func (b Buffer) Valid() bool { return b > 0 && b < numBuffers }

// Buffers returns every buffer (a fresh copy: the table itself cannot be changed from outside).
func Buffers() []Buffer { return append([]Buffer(nil), bufferList...) }
