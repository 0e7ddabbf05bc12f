package backends

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/gpu/simtorch"
	"github.com/moecheck/moecheck/gpu/worker"
)

// EnvVar is the environment variable the fuzz targets read the backend name from.
const EnvVar = "MOECHECK_BACKEND"

// Help describes the backend names Open accepts (for flag and environment help texts).
const Help = `"sim" (pure-Go model of the GPU path), "worker" (moecheck-worker from
PATH), "worker:<command line>" (e.g. worker:'./moecheck-worker -backend cuda -device 1'; split
on spaces, no quoting) or "cuda" (= worker:moecheck-worker -backend cuda)`

// Options tune Open. The zero value is valid: the worker's default timeouts, its standard
// error discarded (kept for case-error details).
type Options struct {
	Timeout time.Duration // per case, worker backends (0: the worker default)
	Stderr  *os.File      // copy of a worker's standard error (nil: none)
}

// Command returns the worker argv a backend name asks for, nil for the in-process sim:
// "" or "sim" → nil; "worker" → moecheck-worker; "cuda" → moecheck-worker -backend cuda;
// "worker:<command line>" → the command line split on spaces.
func Command(name string) ([]string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "sim" || name == "":
		return nil, nil
	case name == "worker":
		return []string{worker.DefaultCommand}, nil
	case name == "cuda":
		return []string{worker.DefaultCommand, "-backend", "cuda"}, nil
	case strings.HasPrefix(name, "worker:"):
		argv := strings.Fields(strings.TrimPrefix(name, "worker:"))
		if len(argv) == 0 {
			return nil, fmt.Errorf("backend %q: needs a command line after the colon", name)
		}
		return argv, nil
	}
	return nil, fmt.Errorf("unknown backend %q: want sim, worker, worker:<command line> or cuda", name)
}

// Open returns the backend a name describes: "sim-torch" (gpu/simtorch, in process: the path
// as PyTorch eager ops compute it, declaring the torch contract), or see Command. (Command,
// and so the CLI's --backend, does not know sim-torch yet: Help leaves it out until the CLI
// opens backends through Open.)
func Open(name string, o Options) (gpu.Backend, error) {
	if strings.TrimSpace(name) == simtorch.Name {
		return simtorch.New(simtorch.Options{}), nil
	}
	argv, err := Command(name)
	if err != nil {
		return nil, fmt.Errorf("backends: %w", err)
	}
	if argv == nil {
		return sim.New(sim.Options{}), nil
	}
	wo := worker.Options{Command: argv, Timeout: o.Timeout}
	if o.Stderr != nil {
		wo.Stderr = o.Stderr
	}
	b, err := worker.New(wo)
	if err != nil {
		return nil, fmt.Errorf("backends: starting the worker %q: %w", strings.Join(argv, " "), err)
	}
	return b, nil
}

// FromEnv opens the backend named by $MOECHECK_BACKEND (default sim).
func FromEnv(o Options) (gpu.Backend, error) { return Open(os.Getenv(EnvVar), o) }
