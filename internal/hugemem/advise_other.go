//go:build !linux || nohugemem

package hugemem

import "unsafe"

// advise does nothing outside Linux.
func advise(unsafe.Pointer, int) {}
