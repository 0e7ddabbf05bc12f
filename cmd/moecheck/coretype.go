package main

import (
	"os"
	"syscall"

	"github.com/moecheck/moecheck/internal/f64gemm"
)

// restartForOpenBLAS re-executes the CLI with OPENBLAS_CORETYPE set when the openblas build's
// OpenBLAS fell back to a generic kernel on a CPU with AVX2/AVX-512 (f64gemm.CoreTypeFix):
// OpenBLAS reads the variable only when it initialises, before main runs. On the H200 host
// it chose "Prescott" and the float64 oracle ran several times slower. Nothing happens in
// the default build, when the variable is set, or when OpenBLAS recognised the CPU; if the
// restart fails the run goes on as it is.
func restartForOpenBLAS() {
	t := f64gemm.CoreTypeFix(os.Getenv)
	if t == "" {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, append(os.Environ(), f64gemm.CoreTypeEnv+"="+t))
}
