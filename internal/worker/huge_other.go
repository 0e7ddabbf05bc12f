//go:build !linux

package worker

import "unsafe"

// adviseHuge: transparent huge pages are a Linux feature; elsewhere nothing to advise.
func adviseHuge(unsafe.Pointer, uintptr) {}
