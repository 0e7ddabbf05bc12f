//go:build cuda

package cuda

/*
#cgo LDFLAGS: -lcuda
#include <cuda.h>
static CUresult moecheckMemAllocHost(void **p, size_t bytes) { return cuMemAllocHost(p, bytes); }
*/
import "C"

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// pinned is a lane's page-locked host buffer (cuMemAllocHost), grown on demand and never
// shrunk: copies from and to it are truly asynchronous on the lane's stream (from pageable
// memory the driver stages them, and a device-to-host copy returns only when it is done).
// It may only be grown or freed when no queued copy uses it (after the stream synchronized).
type pinned struct {
	p unsafe.Pointer
	n int
}

// bytes returns the buffer's first n bytes, growing it (to at least twice its size) when
// it is smaller.
func (h *pinned) bytes(n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if n > h.n {
		h.free()
		size := max(n, 2*h.n, 1<<16)
		var p unsafe.Pointer
		if r := C.moecheckMemAllocHost(&p, C.size_t(size)); r != C.CUDA_SUCCESS {
			if r == C.CUDA_ERROR_OUT_OF_MEMORY {
				return nil, fmt.Errorf("page-locked host buffer of %d bytes: %w", size, cu.OutOfMemory)
			}
			return nil, fmt.Errorf("cuMemAllocHost(%d bytes): CUresult %d", size, int(r))
		}
		h.p, h.n = p, size
	}
	return unsafe.Slice((*byte)(h.p), n), nil
}

// free releases the buffer.
func (h *pinned) free() {
	if h.p != nil {
		cu.MemFreeHost(h.p)
		h.p, h.n = nil, 0
	}
}
