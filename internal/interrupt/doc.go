// Package interrupt lets a command return as soon as its context ends, while a long
// computation that does not observe the context (a reference, sim or oracle pass on a
// real-shape case) is still in flight: props, internal/nightly and the CLI share it.
package interrupt
