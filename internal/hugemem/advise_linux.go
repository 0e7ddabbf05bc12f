//go:build linux && !nohugemem

package hugemem

import (
	"syscall"
	"unsafe"
)

// advise asks for huge pages on the 2 MiB-aligned interior of the n bytes at p. Errors are
// ignored: the advice is an optimisation (a kernel without THP answers EINVAL).
func advise(p unsafe.Pointer, n int) {
	lo, hi := interior(uintptr(p), n)
	if hi > lo {
		syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, madvHugepage)
	}
}

// madvHugepage is MADV_HUGEPAGE (asm-generic/mman-common.h).
const madvHugepage = 14
