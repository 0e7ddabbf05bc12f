// Package checked marks a case as validated, so that a backend entry point can skip
// validating it a second time: the worker (internal/worker) validates every case it decodes,
// and the CUDA lane (gpu/cuda Backend.RunChecked) then runs it without the same check again.
// Only this package makes a non-zero Case, and it is internal to the module, so a library
// user cannot hand a backend an unchecked case through that entry point.
package checked
