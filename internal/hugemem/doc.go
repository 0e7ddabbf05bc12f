// Package hugemem allocates the large slices of a real-shape case (gigabytes of stages, the
// case's tensors, transfer buffers) so that the kernel may back them with transparent huge
// pages.
//
// On Linux with transparent huge pages in "madvise" mode (the common default), memory the Go
// runtime maps is touched one 4 KiB page at a time: a 4.4 GB result decoded into fresh float32
// slices costs over two million page faults, most of the system time of a real-shape check,
// and unmapping them is most of the process's exit. Each function here allocates with make,
// as usual (the memory belongs to the Go heap and is collected as usual), and, for slices of
// at least Threshold bytes, asks the kernel with madvise(MADV_HUGEPAGE) to back the slice's
// whole 2 MiB-aligned interior with huge pages. The advice changes no byte: contents are
// those of make (zero). Elsewhere, when the kernel refuses the advice, or in a build with the
// nohugemem tag, the slices are plain make's. (Where fresh huge pages are expensive, as in a
// virtual machine whose host backs guest memory lazily, the tag turns the advice off.)
package hugemem
