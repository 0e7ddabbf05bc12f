// Package prof starts a CPU profile of a moecheck command when the environment asks for one
// (MOECHECK_CPUPROFILE=PATH writes PATH.<command>.<pid>), so that a run on a machine without
// a Go toolchain (the GPU host) can be profiled and the profile read elsewhere with
// `go tool pprof BINARY PROFILE`. Only the commands' main functions use it.
package prof
