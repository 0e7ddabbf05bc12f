//go:build cuda

package cuda

/*
#cgo LDFLAGS: -lcuda
#include <cuda.h>
static CUresult moecheckMemAllocHost(void **p, size_t bytes) { return cuMemAllocHost(p, bytes); }
*/
import "C"

import (
	"unsafe"

	"gorgonia.org/cu"

	"github.com/moecheck/moecheck/internal/hugemem"
)

// pinned is a lane's page-locked host buffer (cuMemAllocHost), grown on demand and never
// shrunk: copies from and to it are truly asynchronous on the lane's stream (from pageable
// memory the driver stages them, and a device-to-host copy returns only when it is done).
// It may only be grown or freed when no queued copy uses it (after the stream synchronized).
// Above maxPinned bytes, or when the driver refuses to pin, it falls back to ordinary
// (pageable) memory: the copies are then staged by the driver, and still ordered on the
// stream and complete at its synchronization, so results are the same.
type pinned struct {
	p  unsafe.Pointer
	n  int
	gb []byte // pageable fallback
}

// maxPinned bounds a lane's page-locked buffer (pinning gigabytes per lane would take the
// host's memory from the client; cases that large are few and dominated by their kernels).
const maxPinned = 512 << 20

// bytes returns the buffer's first n bytes, growing it (to at least twice its size) when
// it is smaller.
func (h *pinned) bytes(n int) []byte {
	if n == 0 {
		return nil
	}
	if n <= h.n {
		return unsafe.Slice((*byte)(h.p), n)
	}
	if n <= len(h.gb) {
		return h.gb[:n]
	}
	size := max(n, 2*max(h.n, len(h.gb)), 1<<16)
	h.free()
	if size <= maxPinned {
		var p unsafe.Pointer
		if r := C.moecheckMemAllocHost(&p, C.size_t(size)); r == C.CUDA_SUCCESS {
			h.p, h.n = p, size
			return unsafe.Slice((*byte)(h.p), n)
		}
	}
	h.gb = hugemem.Bytes(max(n, min(size, 2*n)))
	return h.gb[:n]
}

// free releases the buffer.
func (h *pinned) free() {
	if h.p != nil {
		cu.MemFreeHost(h.p)
		h.p, h.n = nil, 0
	}
	h.gb = nil
}
