package backends

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/gpu/simtorch"
	"github.com/moecheck/moecheck/internal/worker"
)

// EnvVar is the environment variable the fuzz targets read the backend name from.
const EnvVar = "MOECHECK_BACKEND"

// Help describes the backend names Open accepts (for flag and environment help texts).
const Help = `"sim" (pure-Go model of the GPU path), "sim-torch" (pure-Go model of the path as
PyTorch eager ops compute it; torch contract), "sim-torch-rpr" (the same with its bf16/fp16
GEMMs reducing split-K partials in the dtype, as cuBLAS's reduced-precision reduction does;
torch+reduced-precision-reduction), "worker" (moecheck-worker from PATH),
"worker:<command line>" (e.g. worker:'./moecheck-worker -backend cuda -device 1'; split on
spaces, no quoting), "cuda" (= worker:moecheck-worker -backend cuda) or "torch:<target>" (the
PyTorch worker, python3 -m moecheck.worker --target <target>, interpreter from MOECHECK_PYTHON;
targets transformers:<impl>, callable:<module>:<function>, ledger:<entry>)`

// Options tune Open. The zero value is valid: the worker's default timeouts, its standard
// error discarded (kept for case-error details).
type Options struct {
	Timeout      time.Duration // per case, worker backends (0: the worker default)
	StartTimeout time.Duration // worker start-up to its hello (0: the worker default)
	Stderr       *os.File      // copy of a worker's standard error (nil: none)
	// Triage asks a worker without stage capture for its op-level triage (moecheck triage).
	Triage bool
	// Dir is where a torch backend looks for the checkout's python/ package ("": the working
	// directory); Getenv reads MOECHECK_PYTHON and PYTHONPATH (nil: os.Getenv).
	Dir    string
	Getenv func(string) string
	// Device, when not "", is the CUDA device ordinal the worker runs on: "-device N" is
	// appended to a Go worker's command line (cuda, worker, worker:<command line>),
	// "--device cuda:N" to a torch worker's. The sim has no device: Open refuses one.
	Device string
	// Workers is the number of goroutines one Run of the in-process sim may use (0: every
	// core; sim.Options.Workers); the caller running N jobs at once gives each cores/N.
	Workers int
	// Trace, when non-nil, receives the timeline of each worker run (worker.Options.Trace).
	Trace io.Writer
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

// InProcess reports whether backend name runs in the caller's process (sim, sim-torch,
// sim-torch-rpr); every other name Open accepts starts a worker (cuda, worker, worker:…,
// torch:…).
func InProcess(name string) bool {
	switch strings.TrimSpace(name) {
	case "", "sim", simtorch.Name, simtorch.NameRPR:
		return true
	}
	return false
}

// NameError is Open's error for a backend name it does not accept (a usage error, unlike a
// worker that cannot start).
type NameError struct{ Err error }

func (e *NameError) Error() string { return "backends: " + e.Err.Error() }
func (e *NameError) Unwrap() error { return e.Err }

// Open returns the backend a name describes: "sim" and "sim-torch" run in process (gpu/sim,
// the exact path; gpu/simtorch, the path as PyTorch eager ops compute it, declaring the torch
// contract); the others start a worker (see Command and Resolve). A name it does not accept
// is a *NameError.
func Open(name string, o Options) (gpu.Backend, error) {
	switch strings.TrimSpace(name) {
	case simtorch.Name:
		return simtorch.New(simtorch.Options{}), nil
	case simtorch.NameRPR:
		return simtorch.New(simtorch.Options{ReducedPrecisionReduction: true}), nil
	}
	wo, argv, err := workerOptions(name, o)
	if err != nil {
		return nil, err
	}
	if argv == nil {
		return sim.New(sim.Options{Workers: o.Workers}), nil
	}
	b, err := worker.New(wo)
	if err != nil {
		return nil, fmt.Errorf("starting the worker %q: %w", strings.Join(argv, " "), err)
	}
	return b, nil
}

// workerOptions resolves a backend name to the worker's options and argv (nil argv: the
// in-process sim). A name it does not accept is a *NameError.
func workerOptions(name string, o Options) (worker.Options, []string, error) {
	wd, getenv := o.Dir, o.Getenv
	if wd == "" {
		wd, _ = os.Getwd()
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	res, err := Resolve(name, wd, getenv)
	if err != nil {
		return worker.Options{}, nil, &NameError{err}
	}
	argv := res.Argv
	if argv, err = deviceArgv(name, argv, o.Device); err != nil {
		return worker.Options{}, nil, &NameError{err}
	}
	if argv == nil {
		return worker.Options{}, nil, nil
	}
	wo := worker.Options{Command: argv, Timeout: o.Timeout, StartTimeout: o.StartTimeout, Triage: o.Triage, Trace: o.Trace}
	if len(res.Env) > 0 {
		wo.Env = append(os.Environ(), res.Env...)
	}
	if o.Stderr != nil {
		wo.Stderr = o.Stderr
	}
	return wo, argv, nil
}

// FromEnv opens the backend named by $MOECHECK_BACKEND (default sim).
func FromEnv(o Options) (gpu.Backend, error) { return Open(os.Getenv(EnvVar), o) }

// deviceArgv returns a worker's argv started on a CUDA device ("": argv unchanged).
func deviceArgv(name string, argv []string, device string) ([]string, error) {
	if device == "" {
		return argv, nil
	}
	if n, err := strconv.Atoi(device); err != nil || n < 0 {
		return nil, fmt.Errorf("device %q: want a CUDA device ordinal (0, 1, ...)", device)
	}
	switch {
	case argv == nil:
		return nil, fmt.Errorf("device %s: the sim backend runs on the CPU; devices need a worker backend (cuda, worker:..., torch:...)", device)
	case strings.HasPrefix(strings.TrimSpace(name), TorchPrefix):
		return append(append([]string(nil), argv...), "--device", "cuda:"+device), nil
	}
	return append(append([]string(nil), argv...), "-device", device), nil
}

// Lanes reports whether a backend name starts a worker that serves several lanes in one
// process (worker.NewLanes): moecheck's own worker (cuda, worker, or a worker:<command line>
// whose program is named moecheck-worker) and the PyTorch worker (torch:…). The in-process
// sims and other worker programs do not (as far as moecheck knows).
func Lanes(name, dir string, getenv func(string) string) bool {
	return DefaultLanes(name, dir, getenv) > 1
}

// TorchLanes is the default number of lanes of one PyTorch worker process (torch:…): its lanes
// share one CUDA context, but the Python work of each case (decoding, glue, autograd
// bookkeeping, encoding) holds the GIL, so one process saturates at a few lanes; more jobs
// are spread over more processes of TorchLanes lanes each (TorchJobs).
const TorchLanes = 4

// TorchJobsPerCore and TorchJobsPerDevice set the default number of jobs of a torch:…
// backend (TorchJobs): TorchJobsPerCore per host core, at most TorchJobsPerDevice per device.
// A job is mostly waiting (for its worker's GIL, for its run's kernels among the other
// processes' on the time-sliced GPU, for the oracle), so a device needs many in flight.
// Measured on an H200 host (16 cores; transformers 5.17 grouped_mm, tiny cases, every
// property, history included, steady cases/s; pinned one-copy transfers and blocking waits):
// 24 jobs of 4 lanes 41.3, 32 of 2 50.3–55.1, 32 of 4 54.3, 48 of 4 54.0, 64 of 4 59.0, with
// 10.6 of the 16 cores busy (docs/python.md, "Fourth GPU round").
const (
	TorchJobsPerCore   = 4
	TorchJobsPerDevice = 64
)

// TorchJobs is the default number of jobs of a torch:… backend on a host of cores cores
// with devices devices (0: the CPU, one device): per device, TorchJobsPerCore per core of
// the device's share of the host, between TorchLanes and TorchJobsPerDevice; in worker
// processes of TorchLanes lanes. 64 on the 16-core H200 host, 8 on a 2-core machine.
func TorchJobs(cores, devices int) int {
	devices = max(1, devices)
	per := min(TorchJobsPerDevice, max(TorchLanes, TorchJobsPerCore*max(1, cores)/devices))
	return per * devices
}

// DefaultLanes is how many jobs of one device share a worker process when the CLI's
// --lanes-per-worker is left at auto: all of them (worker.MaxLanes) for moecheck's own worker,
// whose lanes run without a GIL; TorchLanes for the PyTorch worker; 1 (a process per job) for
// any other backend.
func DefaultLanes(name, dir string, getenv func(string) string) int {
	if strings.HasPrefix(strings.TrimSpace(name), TorchPrefix) {
		return TorchLanes
	}
	res, err := Resolve(name, dir, getenv)
	if err != nil || res.Argv == nil {
		return 1
	}
	if filepath.Base(res.Argv[0]) == worker.DefaultCommand {
		return worker.MaxLanes
	}
	return 1
}

// OpenLanes opens n backends of one name that share one worker process as its lanes
// (worker.NewLanes): one CUDA context for the cuda worker, a stream per lane. For a name that
// is not a worker (sim, sim-torch) it opens n independent instances. n = 1 is Open.
func OpenLanes(name string, o Options, n int) ([]gpu.Backend, error) {
	if n == 1 {
		b, err := Open(name, o)
		if err != nil {
			return nil, err
		}
		return []gpu.Backend{b}, nil
	}
	if n < 1 || n > worker.MaxLanes {
		return nil, &NameError{fmt.Errorf("%d lanes: want between 1 and %d", n, worker.MaxLanes)}
	}
	var wo worker.Options
	var argv []string
	if n := strings.TrimSpace(name); n != simtorch.Name && n != simtorch.NameRPR {
		var err error
		if wo, argv, err = workerOptions(name, o); err != nil {
			return nil, err
		}
	}
	if argv == nil {
		var err error
		bs := make([]gpu.Backend, n)
		for k := range bs {
			if bs[k], err = Open(name, o); err != nil {
				for _, b := range bs[:k] {
					b.Close()
				}
				return nil, err
			}
		}
		return bs, nil
	}
	bs, err := worker.NewLanes(wo, n)
	if err != nil {
		return nil, fmt.Errorf("starting the worker %q with %d lanes: %w", strings.Join(argv, " "), n, err)
	}
	return bs, nil
}
