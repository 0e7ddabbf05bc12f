package hugemem

import "unsafe"

// Threshold is the smallest slice, in bytes, that is advised: smaller ones are plain make's
// (a huge page is 2 MiB; advising small slices would only split the heap's mappings).
const Threshold = 32 << 20

// Bytes returns make([]byte, n), advised for huge pages when at least Threshold bytes.
func Bytes(n int) []byte {
	b := make([]byte, n)
	if n >= Threshold {
		advise(unsafe.Pointer(unsafe.SliceData(b)), n)
	}
	return b
}

// Float32s returns make([]float32, n), advised for huge pages when at least Threshold bytes.
func Float32s(n int) []float32 {
	v := make([]float32, n)
	if 4*n >= Threshold {
		advise(unsafe.Pointer(unsafe.SliceData(v)), 4*n)
	}
	return v
}

// Float64s returns make([]float64, n), advised for huge pages when at least Threshold bytes.
func Float64s(n int) []float64 {
	v := make([]float64, n)
	if 8*n >= Threshold {
		advise(unsafe.Pointer(unsafe.SliceData(v)), 8*n)
	}
	return v
}

// hugePage is the size of an x86-64 (and arm64 4 KiB-granule) transparent huge page.
const hugePage = 2 << 20

// interior returns the 2 MiB-aligned part [lo, hi) of the n bytes at p (lo == hi: none).
func interior(p uintptr, n int) (lo, hi uintptr) {
	lo = (p + hugePage - 1) &^ (hugePage - 1)
	hi = (p + uintptr(n)) &^ (hugePage - 1)
	if hi < lo {
		hi = lo
	}
	return lo, hi
}
