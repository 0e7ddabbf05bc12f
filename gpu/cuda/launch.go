//go:build cuda

package cuda

/*
#cgo LDFLAGS: -lcuda
#include <cuda.h>
#include <stdlib.h>
static CUresult moecheckSetMaxDynSmem(CUfunction f, int bytes) {
	return cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
}
// moecheckLaunch launches f with n 8-byte arguments vals (n <= 32): one cgo call per launch
// (cu's Function.Launch makes four more: malloc and free of two argument arrays).
static CUresult moecheckLaunch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned smem,
		CUstream s, unsigned long long *vals, int n) {
	void *argp[32];
	for (int i = 0; i < n; i++) argp[i] = &vals[i];
	return cuLaunchKernel(f, gx, gy, gz, bx, 1, 1, smem, s, argp, NULL);
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// tcSmemBytes is a tensor-core GEMM's dynamic shared memory for column tile bn and depth bk
// (kernels/gemm.cu Tile<BN>::SMEM, Tile2<BN>::SMEM): 4 stages of a 128×40 A tile and a bn×40
// B tile of 16-bit values (bk 32), or 3 stages of 128×72 and bn×72 (bk 64).
func tcSmemBytes(bn, bk int) int {
	if bk == 64 {
		return 3 * (128*72 + bn*72) * 2
	}
	return 4 * (128*40 + bn*40) * 2
}

// tcKernelSuffix names the tile variant: _n128 (128×128×32), _n256 (128×256×32), _n256k64.
func tcKernelSuffix(bn, bk int) string {
	if bk == 64 {
		return fmt.Sprintf("_n%dk64", bn)
	}
	return fmt.Sprintf("_n%d", bn)
}

// tcTile picks the tensor-core column tile for N output columns: 256 (one CTA of 8 warps
// per SM, warp tile 64×64) unless N fits in 128.
func tcTile(n int64) int {
	if n > 128 {
		return 256
	}
	return 128
}

// setMaxDynamicSmem raises a kernel's dynamic shared-memory limit above 48 KiB (cu has no
// wrapper for cuFuncSetAttribute; cu.Function holds exactly one CUfunction).
func setMaxDynamicSmem(fn cu.Function, bytes int) error {
	f := *(*C.CUfunction)(unsafe.Pointer(&fn))
	if r := C.moecheckSetMaxDynSmem(f, C.int(bytes)); r != C.CUDA_SUCCESS {
		return fmt.Errorf("cuFuncSetAttribute: CUresult %d", int(r))
	}
	return nil
}

// dim is a launch's grid.
type dim struct{ x, y, z int }

// maxArgs bounds a kernel's arguments (moecheckLaunch's array).
const maxArgs = 32

// launch starts kernel name on the lane's stream with 8-byte arguments (each argument is
// passed as 8 bytes): cu.DevicePtr, int, int64, uint64, bool. The values go through the
// lane's argument array (C memory, allocated once: freeArgs) and one cgo call.
func (b *Backend) launch(name string, grid dim, block, smem int, args ...any) error {
	fn, ok := b.sh.fns[name]
	if !ok {
		return fmt.Errorf("cuda: no kernel %q", name)
	}
	if grid.y == 0 {
		grid.y = 1
	}
	if grid.z == 0 {
		grid.z = 1
	}
	if grid.x <= 0 {
		return nil
	}
	if len(args) > maxArgs {
		return fmt.Errorf("cuda: kernel %s: %d arguments, at most %d", name, len(args), maxArgs)
	}
	if b.argv == nil {
		// C memory: the driver reads the values through pointers into it, which cgo's
		// pointer rules allow without question (Go memory would be checked as a whole).
		b.argv = C.malloc(C.size_t(8 * maxArgs))
		if b.argv == nil {
			return fmt.Errorf("cuda: kernel %s: no memory for the arguments", name)
		}
	}
	vals := (*[maxArgs]uint64)(b.argv)
	for i, a := range args {
		switch v := a.(type) {
		case cu.DevicePtr:
			vals[i] = uint64(v)
		case int:
			vals[i] = uint64(int64(v))
		case int64:
			vals[i] = uint64(v)
		case uint64:
			vals[i] = v
		case bool:
			vals[i] = 0
			if v {
				vals[i] = 1
			}
		default:
			// The value is not formatted (%T would make every argument escape: one heap
			// allocation per argument of every launch).
			return fmt.Errorf("cuda: kernel %s argument %d: not a pointer, int, int64, uint64 or bool", name, i)
		}
	}
	b.calls.Add(1)
	f := *(*C.CUfunction)(unsafe.Pointer(&fn))
	s := *(*C.CUstream)(unsafe.Pointer(&b.stream))
	if r := C.moecheckLaunch(f, C.uint(grid.x), C.uint(grid.y), C.uint(grid.z), C.uint(block), C.uint(smem), s,
		(*C.ulonglong)(b.argv), C.int(len(args))); r != C.CUDA_SUCCESS {
		return fmt.Errorf("launch %s: %w", name, cuError(cu.Success, int(r)))
	}
	return nil
}

// freeArgs frees the lane's argument array (at Close, on the lane's thread).
func (b *Backend) freeArgs() {
	if b.argv != nil {
		C.free(b.argv)
		b.argv = nil
	}
}

// cuError is CUresult r as gorgonia.org/cu's error value (whose type is unexported: T is
// inferred from cu.Success), so that errors.Is(err, cu.OutOfMemory) and its messages hold.
func cuError[T interface {
	~int
	error
}](_ T, r int) error {
	return T(r)
}

// grid1 is a grid-stride launch's block count for n items of 256 threads, capped.
func grid1(n int64) dim {
	g := (n + 255) / 256
	if g > 16384 {
		g = 16384
	}
	if g < 1 {
		g = 1
	}
	return dim{x: int(g)}
}
