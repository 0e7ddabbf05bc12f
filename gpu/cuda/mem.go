//go:build cuda

package cuda

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// devBuf is one pooled device allocation: [guard | data (cap bytes) | guard...].
type devBuf struct {
	name  string
	buf   gpu.Buffer // 0 for inputs and internal buffers
	base  cu.DevicePtr
	cap   int64
	data  cu.DevicePtr
	n     int64 // bytes in use this run
	fresh bool  // allocated by this run (Stale falls back to Huge)

	lastN, lastDT int64 // size and dtype code the buffer was last poisoned for
}

// alloc returns the pooled buffer name with at least n bytes of data, reusing the previous
// allocation when it is large enough (that reuse is what PoisonStale exposes).
func (b *Backend) alloc(name string, buf gpu.Buffer, n int64) (*devBuf, error) {
	if n <= 0 {
		n = 1
	}
	d := b.pool[name]
	if d != nil && d.cap >= n {
		d.n, d.fresh, d.buf = n, false, buf
		return d, nil
	}
	if d != nil {
		cu.MemFree(d.base)
		delete(b.pool, name)
	}
	c := (n + 255) &^ 255
	p, err := cu.MemAlloc(c + 2*guardBytes)
	if err != nil {
		return nil, fmt.Errorf("allocate %s (%d bytes): %w", name, c+2*guardBytes, err)
	}
	d = &devBuf{name: name, buf: buf, base: p, cap: c, data: p + guardBytes, n: n, fresh: true}
	b.pool[name] = d
	return d, nil
}

func (b *Backend) freeAll() {
	b.freeStale()
	for k, d := range b.pool {
		cu.MemFree(d.base)
		delete(b.pool, k)
	}
}

// guardZones lists the zones of bufs: (address, bytes, tag) triples, before then after each.
func guardZones(bufs []*devBuf) []uint64 {
	z := make([]uint64, 0, 6*len(bufs))
	for i, d := range bufs {
		z = append(z, uint64(d.base), guardBytes, uint64(2*i), uint64(d.data)+uint64(d.n), guardBytes, uint64(2*i+1))
	}
	return z
}

// htod queues a copy of h to dst on the lane's stream. h is the lane's page-locked upload
// buffer (b.up): it must stay unchanged until the stream is synchronized, which every run
// does before the next one writes it.
func (b *Backend) htod(dst cu.DevicePtr, h []byte) error {
	if len(h) == 0 {
		return nil
	}
	b.calls.Add(1)
	return cu.MemcpyHtoDAsync(dst, unsafe.Pointer(&h[0]), int64(len(h)), b.stream)
}

// dtoh queues a copy of src to h on the lane's stream; h (in the lane's page-locked download
// buffer, b.down) is valid after the stream is synchronized.
func (b *Backend) dtoh(h []byte, src cu.DevicePtr) error {
	if len(h) == 0 {
		return nil
	}
	b.calls.Add(1)
	return cu.MemcpyDtoHAsync(unsafe.Pointer(&h[0]), src, int64(len(h)), b.stream)
}

// sync waits for the lane's stream (one driver call).
func (b *Backend) sync() error {
	b.calls.Add(1)
	return b.stream.Synchronize()
}

// memset8 queues n bytes of value v at dst on the lane's stream.
func (b *Backend) memset8(dst cu.DevicePtr, v byte, n int64) error {
	b.calls.Add(1)
	return cu.MemsetD8Async(dst, v, n, b.stream)
}

// dtypeCode is the kernels' dtype number (common.cuh DT_*).
func dtypeCode(d moe.DType) int64 {
	switch d {
	case moe.BF16:
		return 0
	case moe.FP16:
		return 1
	}
	return 2
}

func i32s(b []byte) []int32 {
	out := make([]int32, len(b)/4)
	for i := range out {
		out[i] = int32(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
	}
	return out
}

func i32Bytes(v []int32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		u := uint32(x)
		out[4*i], out[4*i+1], out[4*i+2], out[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return out
}
