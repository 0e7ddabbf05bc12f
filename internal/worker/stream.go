package worker

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/hugemem"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/moe"
)

// Result frames are streamed: the worker encodes a result's tensors chunk by chunk straight
// to its output (WriteResult), and the client decodes them chunk by chunk straight into the
// Result's float32 tensors as they arrive (readReply), so that neither side holds the frame's
// payload (half or all of the stages' size) beside the tensors, and encoding, the pipe and
// decoding overlap. The bytes on the wire are EncodeResult's, unchanged.

// streamChunk is the size of one piece of a streamed payload, in bytes: large enough that
// a pipe write or read and the split of its conversion over cores pay off, small enough
// that the pieces in flight (streamBuffers of them) cost little memory.
const streamChunk = 4 << 20

// streamBuffers is the number of chunk buffers in flight between the goroutine that
// encodes (or reads) and the one that writes (or decodes).
const streamBuffers = 3

// wireTensor is one tensor of a result frame: its placement and its values, float32 holding
// dtype d's values (written as d's storage bits) or int32 indices (i32).
type wireTensor struct {
	hdr TensorHeader
	d   moe.DType
	f32 []float32
	i32 []int32
	raw []byte // the wire bytes themselves (a rawcase.Result's), instead of f32 or i32
}

// elemBytes is the size of one element on the wire.
func (t *wireTensor) elemBytes() int64 {
	if t.hdr.DType == WireI32 {
		return 4
	}
	return int64(t.d.Bits() / 8)
}

// encode writes elements [lo, hi) of t as wire bytes into b (len (hi−lo)·elemBytes).
func (t *wireTensor) encode(b []byte, lo, hi int) {
	if t.raw != nil {
		eb := int(t.elemBytes())
		if t.quiets() {
			quietF16(b, t.raw[lo*eb:hi*eb])
		} else {
			copy(b, t.raw[lo*eb:hi*eb])
		}
		return
	}
	if t.hdr.DType == WireI32 {
		for i, x := range t.i32[lo:hi] {
			binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
		}
		return
	}
	encodeFloat32(t.d, b, t.f32[lo:hi])
}

// encodeFloat32 is Float32Bytes into b (len(v)·element size bytes).
func encodeFloat32(d moe.DType, b []byte, v []float32) {
	switch d {
	case moe.BF16:
		b = b[:2*len(v)]
		for i, x := range v {
			u := math.Float32bits(x) >> 16
			b[2*i], b[2*i+1] = byte(u), byte(u>>8)
		}
	case moe.FP16:
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], f32ToF16Bits(x))
		}
	default:
		b = b[:4*len(v)]
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
	}
}

// decodeInt32 decodes little-endian int32s from b into v (len(b)/4 values).
func decodeInt32(v []int32, b []byte) {
	for i := range v[:len(b)/4] {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// resultTensors lays out r's result frame for a config: the outputs r carries, then with
// stages the plan (perm, offsets) and the stage tensors it carries, back to back.
func resultTensors(cfg moe.Config, r *gpu.Result) (ts []wireTensor, size int64) {
	d := cfg.DType
	add := func(t wireTensor, n int) {
		t.hdr.Shape, t.hdr.Offset = []int{n}, size
		t.hdr.Bytes = int64(n) * t.elemBytes()
		size += t.hdr.Bytes
		ts = append(ts, t)
	}
	float := func(name string, v []float32) {
		add(wireTensor{hdr: TensorHeader{Name: name, DType: d.String()}, d: d, f32: v}, len(v))
	}
	for _, t := range moe.Outputs() {
		if v := r.Tensor(t); v != nil {
			float(wireName(t), v)
		}
	}
	if s := r.Stages; s != nil {
		add(wireTensor{hdr: TensorHeader{Name: wireName(moe.TensorPerm), DType: WireI32}, i32: s.Perm}, len(s.Perm))
		add(wireTensor{hdr: TensorHeader{Name: wireName(moe.TensorOffsets), DType: WireI32}, i32: s.Offsets}, len(s.Offsets))
		for _, t := range moe.StageTensors() {
			if v := s.Tensor(t); v != nil {
				float(wireName(t), v)
			}
		}
	}
	return ts, size
}

// headers returns the tensors' headers.
func headers(ts []wireTensor) []TensorHeader {
	h := make([]TensorHeader, len(ts))
	for i := range ts {
		h[i] = ts[i].hdr
	}
	return h
}

// EncodeResult builds the result frame of r for a case of config cfg. Nil tensors are left
// out (a Result without biases has no db1, db2). WriteResult writes the same bytes without
// building the payload.
func EncodeResult(id uint64, cfg moe.Config, r *gpu.Result) *Frame {
	ts, size := resultTensors(cfg, r)
	return encodeTensors(id, ts, size)
}

// encodeTensors is EncodeResult of the tensors resultTensors listed (size: their bytes).
func encodeTensors(id uint64, ts []wireTensor, size int64) *Frame {
	buf := make([]byte, size)
	for i := range ts {
		t := &ts[i]
		n := int(t.hdr.Bytes / t.elemBytes())
		t.encode(buf[t.hdr.Offset:t.hdr.Offset+t.hdr.Bytes], 0, n)
	}
	return &Frame{Header: Header{Type: TypeResult, ID: id, Tensors: headers(ts)}, Payload: buf}
}

// pipeSize is the capacity the client asks for a lane pipe that carries a big case (Linux's
// default /proc/sys/fs/pipe-max-size; growPipe): a result of gigabytes then crosses in 1 MiB
// steps instead of 64 KiB ones, with a sixteenth of the wake-ups.
const pipeSize = 1 << 20

// WriteResult writes the result frame of r for a case of config cfg to w: the bytes of
// WriteFrame(w, EncodeResult(id, cfg, r)), with the payload encoded chunk by chunk (on a
// second goroutine, while the previous chunk is written) instead of held whole.
func WriteResult(w io.Writer, id uint64, cfg moe.Config, r *gpu.Result) error {
	return writeResult(w, id, cfg, r, streamChunk)
}

// writeResult is WriteResult in chunks of chunk bytes (at least 8).
func writeResult(w io.Writer, id uint64, cfg moe.Config, r *gpu.Result, chunk int64) error {
	ts, size := resultTensors(cfg, r)
	return writeTensors(w, id, ts, size, chunk)
}

// writeTensors is writeResult of the tensors resultTensors listed (size: their bytes).
func writeTensors(w io.Writer, id uint64, ts []wireTensor, size, chunk int64) error {
	if size <= chunk { // one chunk: nothing to overlap
		return WriteFrame(w, encodeTensors(id, ts, size))
	}
	pre, err := appendResultPrefix(nil, id, ts, size)
	if err != nil {
		return err
	}
	if _, err := w.Write(pre); err != nil {
		return fmt.Errorf("worker: write frame: %w", err)
	}
	free := make(chan []byte, streamBuffers)
	full := make(chan []byte, streamBuffers)
	for range streamBuffers {
		free <- make([]byte, chunk)
	}
	stop := make(chan struct{})
	go func() {
		defer close(full)
		for i := range ts {
			t := &ts[i]
			eb := t.elemBytes()
			n, per := int(t.hdr.Bytes/eb), int(chunk/eb)
			for lo := 0; lo < n; lo += per {
				var b []byte
				select {
				case b = <-free:
				case <-stop:
					return
				}
				hi := min(lo+per, n)
				b = b[:int64(hi-lo)*eb]
				encodeSplit(t, b, lo, hi)
				full <- b // never blocks: full holds every buffer
			}
		}
	}()
	for b := range full {
		if err == nil {
			if _, err = w.Write(b); err != nil {
				close(stop)
			}
		}
		free <- b[:cap(b)] // never blocks: free holds every buffer
	}
	if err != nil {
		return fmt.Errorf("worker: write frame: %w", err)
	}
	return nil
}

// encodeSplit encodes elements [lo, hi) of t into b over the cores.
func encodeSplit(t *wireTensor, b []byte, lo, hi int) {
	eb := int(t.elemBytes())
	par.For(par.New(0, 0), hi-lo, 1, t, func(t *wireTensor, a, z int) {
		t.encode(b[a*eb:z*eb], lo+a, lo+z)
	})
}

// readReply reads a reply frame for a case of config cfg from r. A result frame longer
// than one chunk whose tensors are, in payload order and without overlap, tensors
// DecodeResult reads with the dtype and size it wants (and any others, skipped), with every
// output DecodeResult needs, is decoded as its payload arrives: the frame comes back without
// its payload, with its Result. Any other frame is read whole, as readFrame reads it, and
// res is nil (DecodeResult then judges it, naming what is wrong). Errors are readFrame's.
func readReply(r io.Reader, maxPayload int64, cfg moe.Config) (f *Frame, res *gpu.Result, err error) {
	return readReplyIn(r, maxPayload, cfg, streamChunk)
}

// readReplyIn is readReply in chunks of chunk bytes (at least 8).
func readReplyIn(r io.Reader, maxPayload int64, cfg moe.Config, chunk int64) (f *Frame, res *gpu.Result, err error) {
	f, pl, err := readHeader(r, maxPayload)
	if err != nil {
		return nil, nil, err
	}
	var dst []sink
	ok := false
	if pl > chunk { // one chunk has nothing to overlap
		dst, res, ok = streamPlan(&f.Header, pl, cfg)
	}
	if !ok {
		if f.Payload, err = readN(r, pl); err != nil {
			return nil, nil, unexpected(err)
		}
		return f, nil, nil
	}
	if err := readInto(r, pl, dst, chunk); err != nil {
		return nil, nil, unexpected(err)
	}
	return f, res, nil
}

// sink is where a streamed tensor's bytes go: float32 values of d, int32 indices, or
// nowhere (a tensor the client does not read).
type sink struct {
	hdr TensorHeader
	d   moe.DType
	f32 []float32
	i32 []int32
}

// streamPlan checks a result header against what DecodeResult reads for cfg and returns
// the tensors in payload order with their destinations in a Result it allocates; ok is
// false when the frame must be read whole (see readReply).
func streamPlan(h *Header, pl int64, cfg moe.Config) (dst []sink, res *gpu.Result, ok bool) {
	if h.Type != TypeResult {
		return nil, nil, false
	}
	m := make(map[string]TensorHeader, len(h.Tensors))
	for _, t := range h.Tensors {
		if t.Offset < 0 || t.Bytes < 0 || t.Offset > pl || t.Bytes > pl-t.Offset {
			return nil, nil, false
		}
		if _, dup := m[t.Name]; dup {
			return nil, nil, false
		}
		m[t.Name] = t
	}
	d := cfg.DType
	res = &gpu.Result{}
	want := map[string]sink{}
	float := func(t moe.Tensor, required bool) bool {
		name := wireName(t)
		th, err := check(m, name, d.String(), cfg.Len(t), true)
		if err != nil {
			_, there := m[name]
			return !required && !there
		}
		v := hugemem.Float32s(cfg.Len(t)) // pages are touched as the bytes arrive
		res.SetTensor(t, v)
		want[name] = sink{hdr: th, d: d, f32: v}
		return true
	}
	for _, t := range moe.Outputs() {
		if t.Bias() && !cfg.Bias {
			continue
		}
		if !float(t, true) {
			return nil, nil, false
		}
	}
	if _, ok := m[wireName(moe.TensorPerm)]; ok {
		pt, err := check(m, wireName(moe.TensorPerm), WireI32, cfg.S(), false)
		if err != nil {
			return nil, nil, false
		}
		ot, err := check(m, wireName(moe.TensorOffsets), WireI32, cfg.E, false)
		if err != nil {
			return nil, nil, false
		}
		s := &gpu.Stages{Perm: make([]int32, cfg.S()), Offsets: make([]int32, cfg.E)}
		res.Stages = s
		want[pt.Name] = sink{hdr: pt, i32: s.Perm}
		want[ot.Name] = sink{hdr: ot, i32: s.Offsets}
		for _, t := range moe.StageTensors() {
			if !float(t, false) {
				return nil, nil, false
			}
		}
	}
	for _, t := range h.Tensors {
		s, ok := want[t.Name]
		if !ok {
			s = sink{hdr: t}
		}
		dst = append(dst, s)
	}
	slices.SortStableFunc(dst, func(a, b sink) int { return int(a.hdr.Offset - b.hdr.Offset) })
	for i := 1; i < len(dst); i++ {
		if dst[i].hdr.Offset < dst[i-1].hdr.Offset+dst[i-1].hdr.Bytes {
			return nil, nil, false // overlapping tensors: read whole
		}
	}
	return dst, res, true
}

// piece is a chunk of the payload on its way from the reader to the decoder: bytes
// [from, from+len(b)) of sink k (k = −1: bytes no tensor the client reads holds).
type piece struct {
	k    int
	from int64
	b    []byte
}

// readInto reads pl payload bytes from r into the sinks (in payload order, within pl) in
// chunks of chunk bytes, reading on a second goroutine while the cores decode the previous
// chunk.
func readInto(r io.Reader, pl int64, dst []sink, chunk int64) error {
	free := make(chan []byte, streamBuffers)
	full := make(chan piece, streamBuffers)
	for range streamBuffers {
		free <- make([]byte, chunk)
	}
	var rerr error
	go func() {
		defer close(full)
		pos := int64(0)
		send := func(k int, from, n int64) bool {
			b := <-free
			b = b[:n]
			if _, err := io.ReadFull(r, b); err != nil {
				rerr = err
				free <- b
				return false
			}
			full <- piece{k, from, b}
			return true
		}
		skip := func(n int64) bool {
			for n > 0 {
				c := min(n, chunk)
				if !send(-1, 0, c) {
					return false
				}
				n -= c
			}
			return true
		}
		for k := range dst {
			s := &dst[k]
			if !skip(s.hdr.Offset - pos) {
				return
			}
			pos = s.hdr.Offset
			if s.f32 == nil && s.i32 == nil {
				if !skip(s.hdr.Bytes) {
					return
				}
			} else {
				eb := int64(4)
				if s.f32 != nil {
					eb = int64(s.d.Bits() / 8)
				}
				per := chunk / eb * eb
				for from := int64(0); from < s.hdr.Bytes; from += per {
					if !send(k, from, min(per, s.hdr.Bytes-from)) {
						return
					}
				}
			}
			pos += s.hdr.Bytes
		}
		skip(pl - pos)
	}()
	for p := range full {
		if p.k >= 0 {
			s := &dst[p.k]
			if s.f32 != nil {
				eb := int64(s.d.Bits() / 8)
				s.d.Float32s(s.f32[p.from/eb:p.from/eb+int64(len(p.b))/eb], p.b) // over the cores
			} else {
				decodeInt32(s.i32[p.from/4:], p.b)
			}
		}
		free <- p.b[:cap(p.b)]
	}
	return rerr
}

// appendResultPrefix appends a result frame's prefix to b: the header's length, the header
// (type result, id, the tensors' headers) and the payload's size, after checking both
// against the protocol's limits.
func appendResultPrefix(b []byte, id uint64, ts []wireTensor, size int64) ([]byte, error) {
	h, err := json.Marshal(&Header{Type: TypeResult, ID: id, Tensors: headers(ts)})
	if err != nil {
		return b, fmt.Errorf("worker: encode header: %w", err)
	}
	if len(h) > MaxHeaderBytes {
		return b, fmt.Errorf("worker: header of %d bytes exceeds the limit %d", len(h), MaxHeaderBytes)
	}
	if size > MaxPayloadBytes {
		return b, fmt.Errorf("worker: payload of %d bytes exceeds the limit %d", size, int64(MaxPayloadBytes))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(h)))
	b = append(b, h...)
	return binary.LittleEndian.AppendUint64(b, uint64(size)), nil
}
