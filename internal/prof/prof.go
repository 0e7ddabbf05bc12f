package prof

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// EnvVar names the profile's path prefix.
const EnvVar = "MOECHECK_CPUPROFILE"

// Start starts a CPU profile into prefix.<command>.<pid> when prefix (the value of EnvVar) is
// not empty, and returns the function that stops it; problems are written to stderr and do
// not stop the command.
func Start(prefix, command string, stderr io.Writer) (stop func()) {
	if prefix == "" {
		return func() {}
	}
	name := fmt.Sprintf("%s.%s.%d", prefix, filepath.Base(command), os.Getpid())
	f, err := os.Create(name)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v (no profile)\n", EnvVar, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "%s: %v (no profile)\n", EnvVar, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", EnvVar, err)
		}
	}
}
