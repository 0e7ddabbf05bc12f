//go:build !cuda

package main

// Without the cuda tag there is no CUDA backend and no CUDA benchmark.
func cudaBackend() backendFactory { return nil }
func cudaBench() bencher          { return nil }
