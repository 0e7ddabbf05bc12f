package gpu

import "fmt"

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

var bufferNames = [...]string{"", "xs", "h1", "act", "h2", "o", "y", "d_o", "d_rw", "d_h2", "d_act", "d_h1", "d_xs", "dX", "dW1", "dB1", "dW2", "dB2"}

func (b Buffer) String() string {
	if b > 0 && b < numBuffers {
		return bufferNames[b]
	}
	return fmt.Sprintf("buffer(%d)", uint8(b))
}

// Valid reports whether b names a buffer.
func (b Buffer) Valid() bool { return b > 0 && b < numBuffers }

// Buffers returns every buffer (a fresh copy: the table itself cannot be changed from outside).
func Buffers() []Buffer { return append([]Buffer(nil), bufferList...) }
