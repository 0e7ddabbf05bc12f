package worker

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/moecheck/moecheck/internal/rawcase"
	"github.com/moecheck/moecheck/moe"
)

// A backend that runs cases as their bits (rawcase.Runner: gpu/cuda, whose device holds the
// dtype's storage bits) is served without converting values: the request's tensors are
// validated on their bits and handed over as slices of the payload (decodeBits), and the
// result's bits are written to the wire as they are (bitsTensors, writeBits). The frames are
// the same bytes as on the decoded path (TestBitsFrames).

// bitsTensors lays out the result frame of r for a case of config cfg as resultTensors lays
// out the decoded result's: the outputs r carries, then with the plan's perm the plan and the
// stage tensors r carries. A tensor that is not a whole number of elements is an error. A
// tensor with a zero tail (rawcase.Result.SetPrefix) keeps it out of the frame when zeroTails
// (the client reads zero tails), and is sent whole otherwise.
func bitsTensors(cfg moe.Config, r *rawcase.Result, zeroTails bool) (ts []wireTensor, size int64, _ error) {
	d := cfg.DType
	add := func(t moe.Tensor, dtype string, eb int) error {
		b, whole := r.Tensor(t), r.Size(t)
		if !zeroTails {
			b = r.Whole(t)
		}
		if len(b)%eb != 0 || whole%eb != 0 {
			return fmt.Errorf("worker: result tensor %s of %d bytes (%d sent) is not a whole number of %s elements", t, whole, len(b), dtype)
		}
		if b == nil {
			b = []byte{} // present (the plan's offsets of a run with stages), empty
		}
		n := whole / eb
		h := TensorHeader{Name: wireName(t), DType: dtype, Shape: []int{n}, Offset: size, Bytes: int64(len(b))}
		if whole > len(b) {
			if dtype == WireI32 {
				return fmt.Errorf("worker: result tensor %s has a zero tail, which only float tensors may have", t)
			}
			h.Size = int64(whole)
		}
		ts = append(ts, wireTensor{hdr: h, d: d, raw: b})
		size += int64(len(b))
		return nil
	}
	w := d.Bits() / 8
	for _, t := range moe.Outputs() {
		if r.Tensor(t) != nil {
			if err := add(t, d.String(), w); err != nil {
				return nil, 0, err
			}
		}
	}
	if r.Tensor(moe.TensorPerm) != nil {
		if err := add(moe.TensorPerm, WireI32, 4); err != nil {
			return nil, 0, err
		}
		if err := add(moe.TensorOffsets, WireI32, 4); err != nil {
			return nil, 0, err
		}
		for _, t := range moe.StageTensors() {
			if r.Tensor(t) != nil {
				if err := add(t, d.String(), w); err != nil {
					return nil, 0, err
				}
			}
		}
	}
	return ts, size, nil
}

// inlineBits is the largest result frame writeBits assembles in its scratch buffer and writes
// at once; a larger one is written header first, then straight from each tensor's bytes.
const inlineBits = 1 << 20

// writeBits writes the result frame of the tensors bitsTensors listed (size: their bytes):
// the bytes of WriteFrame(w, encodeTensors(id, ts, size)). scratch is the caller's buffer,
// reused from frame to frame (it grows up to inlineBits plus the header).
func writeBits(w io.Writer, id uint64, ts []wireTensor, size int64, scratch *[]byte) error {
	b, err := appendResultPrefix((*scratch)[:0], id, ts, size)
	if err != nil {
		return err
	}
	inline := size <= inlineBits
	if inline {
		for i := range ts {
			t := &ts[i]
			at := len(b)
			b = append(b, t.raw...)
			if t.quiets() {
				quietF16(b[at:], t.raw)
			}
		}
	} else {
		for i := range ts {
			if ts[i].quiets() { // fp16: the chunked writer quiets the NaNs chunk by chunk
				return writeTensors(w, id, ts, size, streamChunk)
			}
		}
	}
	*scratch = b
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("worker: write frame: %w", err)
	}
	if !inline {
		for i := range ts {
			if _, err := w.Write(ts[i].raw); err != nil {
				return fmt.Errorf("worker: write frame: %w", err)
			}
		}
	}
	return nil
}

// quiets reports whether t is raw fp16 values, which are written with their signalling NaNs
// quieted (quietF16).
func (t *wireTensor) quiets() bool { return t.raw != nil && t.d == moe.FP16 && t.hdr.DType == "fp16" }

// quietF16 copies fp16 storage bits from src to dst, setting the quiet bit of every
// signalling NaN (payload kept): the bits the float32 round trip of the decoded path gives
// (moe.DType.FromBits, then f32ToF16Bits), which maps every other pattern to itself
// (TestBitsFrames covers all 65536). bf16 and fp32 bits cross that round trip unchanged.
func quietF16(dst, src []byte) {
	n := copy(dst, src) &^ 1
	// Four values at a time: a value's exponent field is all ones (NaN or ±Inf) exactly when
	// adding 0x0400 to it carries into its sign bit; only such words are looked at closely.
	i := 0
	for ; i+8 <= n; i += 8 {
		x := binary.LittleEndian.Uint64(src[i:])
		if (x&0x7c007c007c007c00+0x0400040004000400)&0x8000800080008000 != 0 {
			quietSpan(dst[i:i+8], src[i:i+8])
		}
	}
	quietSpan(dst[i:n], src[i:n])
}

// quietSpan is quietF16's value by value loop.
func quietSpan(dst, src []byte) {
	for i := 0; i+1 < len(src); i += 2 {
		u := uint16(src[i]) | uint16(src[i+1])<<8
		if u&0x7e00 == 0x7c00 && u&0x03ff != 0 {
			u |= 0x0200
			dst[i], dst[i+1] = byte(u), byte(u>>8)
		}
	}
}
