package fuzz

import (
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"os"
	"sync"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/backends"
	"github.com/moecheck/moecheck/props"
)

// FaultsVar names catalog faults to switch on in every run (comma-separated).
const FaultsVar = "MOECHECK_FAULTS"

// Env is the property environment of one fuzz worker process: the backend from
// $MOECHECK_BACKEND and the faults from $MOECHECK_FAULTS. It is opened once per process (the
// fuzzer runs the target many times in each worker) and never closed: the process exits.
func Env() (*props.Env, error) {
	envOnce.Do(func() {
		var faults fault.Set
		faults, envErr = fault.ParseSet(os.Getenv(FaultsVar))
		if envErr != nil {
			envErr = fmt.Errorf("fuzz: $%s: %w", FaultsVar, envErr)
			return
		}
		var b gpu.Backend
		if b, envErr = backends.FromEnv(backends.Options{}); envErr != nil {
			return
		}
		env = &props.Env{Backend: b, Faults: faults}
	})
	return env, envErr
}

// The fuzz worker's environment: a process-wide singleton by necessity (the fuzz engine calls
// the target function, not a constructor), set once and read-only afterwards.
var (
	envOnce sync.Once
	env     *props.Env
	envErr  error
)

// warmUp opens the environment before fuzzing starts, in every fuzz worker process: a worker
// backend starts its process there (a CUDA worker loads its modules, and a cold driver
// JIT-compiles the kernels for seconds), outside the fuzz engine's 10-second limit per input,
// which would otherwise call the first input a hang. An error is reported by the first input.
func warmUp() { _, _ = Env() }
