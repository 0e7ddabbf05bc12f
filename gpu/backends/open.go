package backends

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/gpu/worker"
)

// EnvVar is the environment variable the fuzz targets read the backend name from.
const EnvVar = "MOECHECK_BACKEND"

// Options tune Open. The zero value is valid: the worker's default timeouts, its standard
// error discarded (kept for case-error details).
type Options struct {
	Timeout time.Duration // per case, worker backends (0: the worker default)
	Stderr  *os.File      // copy of a worker's standard error (nil: none)
}

// Open returns the backend a name describes: "" or "sim", or "worker:<command line>"
// (split on spaces; "worker" alone runs moecheck-worker from PATH).
func Open(name string, o Options) (gpu.Backend, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "" || name == "sim":
		return sim.New(sim.Options{}), nil
	case name == "worker" || strings.HasPrefix(name, "worker:"):
		args := strings.Fields(strings.TrimPrefix(strings.TrimPrefix(name, "worker"), ":"))
		wo := worker.Options{Command: args, Timeout: o.Timeout}
		if o.Stderr != nil {
			wo.Stderr = o.Stderr
		}
		b, err := worker.New(wo)
		if err != nil {
			return nil, fmt.Errorf("backends: %s: %w", name, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("backends: unknown backend %q (want sim, worker or worker:<command line>)", name)
}

// FromEnv opens the backend named by $MOECHECK_BACKEND (default sim).
func FromEnv(o Options) (gpu.Backend, error) { return Open(os.Getenv(EnvVar), o) }
