//go:build linux

package worker

import (
	"syscall"
	"unsafe"
)

// hugePage is the size of a transparent huge page on the platforms moecheck runs on.
const hugePage = 2 << 20

// adviseHuge asks the kernel to back the 2 MiB-aligned interior of [p, p+n) with transparent
// huge pages (MADV_HUGEPAGE) before it is first written, so that filling a tensor of
// gigabytes costs a page fault per 2 MiB instead of per 4 KiB (in a virtual machine each
// fault is expensive). Advice only: a kernel without THP, or with THP off, ignores it, and
// nothing else changes.
func adviseHuge(p unsafe.Pointer, n uintptr) {
	if n < 2*hugePage {
		return
	}
	lo := (uintptr(p) + hugePage - 1) &^ (hugePage - 1)
	hi := (uintptr(p) + n) &^ (hugePage - 1)
	if hi <= lo {
		return
	}
	// The range lies inside the caller's live allocation (p keeps it alive through the call).
	syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, syscall.MADV_HUGEPAGE)
}
