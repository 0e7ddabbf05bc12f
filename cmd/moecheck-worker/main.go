package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/phase"
	"github.com/moecheck/moecheck/internal/prof"
	"github.com/moecheck/moecheck/internal/worker"
)

// backendFactory opens f.lanes instances of a backend (lanes sharing what the backend can
// share: one CUDA context for cuda); device describes what they run on.
type backendFactory func(f *flags) (bs []gpu.Backend, device string, err error)

// bencher times a backend.
type bencher func(f *flags, b gpu.Backend, w io.Writer) error

// compiled returns the backends compiled in (cuda with the cuda tag: cuda.go / nocuda.go),
// the benchers, and the default backend (cuda when compiled in, else sim). Built per call:
// no package state is changed at init.
func compiled() (backends map[string]backendFactory, benchers map[string]bencher, def string) {
	backends = map[string]backendFactory{
		"sim": func(f *flags) ([]gpu.Backend, string, error) {
			bs := make([]gpu.Backend, max(1, f.lanes))
			for k := range bs {
				bs[k] = sim.New(sim.Options{})
			}
			return bs, "cpu (gpu/sim)", nil
		},
	}
	benchers = map[string]bencher{}
	def = "sim"
	if b := cudaBackend(); b != nil {
		backends["cuda"], def = b, "cuda"
	}
	if b := cudaBench(); b != nil {
		benchers["cuda"] = b
	}
	return backends, benchers, def
}

type flags struct {
	backend          string
	device           int
	stageGuardChecks bool
	stageSync        bool
	lanes            int
	selftest         bool
	quick            bool
	bench            bool
	sanitize         bool
	clientCheck      bool
	reps             int
	benchT           int
	tileN            int
	tileK            int
	crashShape       string
	corpusDirs       string
	trace            io.Writer // $MOECHECK_TRACE set: the timeline on stderr (nil: none)
}

func main() {
	stopProf := prof.Start(os.Getenv(prof.EnvVar), os.Args[0], os.Stderr)
	code := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stopProf()
	os.Exit(code)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("moecheck-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f flags
	backends, benchers, defaultBackend := compiled()
	names := make([]string, 0, len(backends))
	for n := range backends {
		names = append(names, n)
	}
	sort.Strings(names)
	fs.StringVar(&f.backend, "backend", defaultBackend, "backend: "+strings.Join(names, ", "))
	fs.IntVar(&f.device, "device", 0, "CUDA device ordinal")
	fs.Bool("no-guard-checks", false, "deprecated, no effect: guard zones are checked once at the end of each run by default (see -stage-guard-checks)")
	fs.BoolVar(&f.stageGuardChecks, "stage-guard-checks", false, "cuda: check the guard zones after every stage too, not only at the end of each run (names the stage of an out-of-bounds write without a re-run; slower)")
	fs.BoolVar(&f.stageSync, "stage-sync", false, "cuda: synchronize after every stage, so that a device fault names its stage (slower)")
	envLanes, err := worker.LanesFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "moecheck-worker: %v\n", err)
		return 2
	}
	fs.IntVar(&f.lanes, "lanes", envLanes, "serve this many lanes, each its own backend instance (cuda: one shared context, a stream per lane): lane 0 on stdin/stdout, lane k on descriptors 2k+1/2k+2 (default: $"+worker.LanesEnv+", else 1); with -selftest or -client-check: also run cases on this many lanes at once")
	fs.BoolVar(&f.selftest, "selftest", false, "judge the backend with the oracle on a matrix of cases, and every fault against gpu/sim; print a table")
	fs.BoolVar(&f.quick, "quick", false, "with -selftest: fewer cases")
	fs.BoolVar(&f.sanitize, "sanitize", false, "run a few small cases once (for compute-sanitizer)")
	fs.BoolVar(&f.clientCheck, "client-check", false, "launch this binary as a worker through internal/worker and check that a crash costs one case")
	fs.BoolVar(&f.bench, "bench", false, "time the path at Qwen3-30B-A3B rank shape (cuda)")
	fs.IntVar(&f.reps, "reps", 20, "with -bench: timed repeats (after 3 warm-ups)")
	fs.IntVar(&f.tileN, "tile-n", 0, "cuda: force the tensor-core column tile (128 or 256; 0 = by size)")
	fs.IntVar(&f.tileK, "tile-k", 0, "cuda: force the depth of 256-column tiles (32 or 64; 0 = 64)")
	fs.IntVar(&f.benchT, "bench-tokens", 16384, "with -bench: tokens T")
	fs.StringVar(&f.corpusDirs, "sanitize-corpus", "", "with -sanitize: also run every case of these corpus directories (comma list), under each case's poison policies")
	fs.StringVar(&f.crashShape, "crash-shape", "", "serving: run cases of this shape `T,H,I,E,K` with the crash fault (a real device fault), to show that a crash costs one case")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Getenv(phase.EnvVar) != "" {
		f.trace = stderr
	}
	if f.lanes < 1 || f.lanes > worker.MaxLanes {
		fmt.Fprintf(stderr, "moecheck-worker: -lanes %d: want between 1 and %d\n", f.lanes, worker.MaxLanes)
		return 2
	}
	crash, err := parseCrashShape(f.crashShape)
	if err != nil {
		fmt.Fprintf(stderr, "moecheck-worker: %v\n", err)
		return 2
	}
	if f.clientCheck {
		if err := clientCheck(stdout, f.backend, f.lanes); err != nil {
			fmt.Fprintf(stdout, "client-check: FAIL: %v\n", err)
			return 1
		}
		return 0
	}
	open, ok := backends[f.backend]
	if !ok {
		fmt.Fprintf(stderr, "moecheck-worker: unknown backend %q (compiled in: %s)\n", f.backend, strings.Join(names, ", "))
		return 2
	}
	serving := !f.selftest && !f.sanitize && !f.bench
	if !serving && !f.selftest {
		f.lanes = 1 // -sanitize and -bench use one lane
	}
	var lanes []worker.Lane
	if serving {
		// The lanes' descriptors are checked before the backend starts (CUDA init and JIT).
		if lanes, err = worker.OpenLanes(f.lanes, stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "moecheck-worker: %v\n", err)
			return 2
		}
	}
	bs, device, err := open(&f)
	if err != nil {
		fmt.Fprintf(stderr, "moecheck-worker: %s backend: %v\n", f.backend, err)
		return 3
	}
	defer closeAll(bs)
	b := bs[0]
	switch {
	case f.selftest:
		fmt.Fprintf(stdout, "moecheck-worker selftest: backend %s on %s\n", b.Name(), device)
		n := 0
		if len(bs) > 1 {
			// Before the self-test, whose crash fault (last) loses the CUDA context.
			n += selftestLanes(stdout, bs, f.quick)
		}
		n += selftest(stdout, b, sim.New(sim.Options{}), f.quick, f.stageGuardChecks)
		if n > 0 {
			fmt.Fprintf(stdout, "selftest: %d FAILED\n", n)
			return 1
		}
		fmt.Fprintln(stdout, "selftest: all passed")
		return 0
	case f.sanitize:
		if err := sanitizeRun(stdout, b); err != nil {
			fmt.Fprintf(stderr, "moecheck-worker: sanitize: %v\n", err)
			return 3
		}
		if err := sanitizeCorpus(stdout, b, f.corpusDirs); err != nil {
			fmt.Fprintf(stderr, "moecheck-worker: sanitize: %v\n", err)
			return 3
		}
		return 0
	case f.bench:
		bench, ok := benchers[f.backend]
		if !ok {
			fmt.Fprintf(stderr, "moecheck-worker: no benchmark for backend %s\n", f.backend)
			return 2
		}
		if err := bench(&f, b, stdout); err != nil {
			fmt.Fprintf(stderr, "moecheck-worker: bench: %v\n", err)
			return 3
		}
		return 0
	}
	if crash != nil {
		for k := range bs {
			bs[k] = crashOn{Backend: bs[k], shape: crash}
		}
	}
	err = worker.ServeLanes(lanes, bs, worker.ServeOptions{Device: device, Trace: f.trace})
	if errors.Is(err, worker.ErrHangup) {
		// The client is gone and the backend may still be running its case: exit now,
		// without closing it (a busy CUDA thread would hold Close up).
		fmt.Fprintln(stderr, "moecheck-worker: client hung up mid-case; exiting")
		os.Exit(0)
	}
	if errors.Is(err, worker.ErrCrashed) {
		fmt.Fprintln(stderr, "moecheck-worker: backend crashed; exiting so that the client restarts the worker")
		return 3
	}
	if err != nil {
		fmt.Fprintf(stderr, "moecheck-worker: %v\n", err)
		return 3
	}
	return 0
}

// closeAll closes the backends at once (a CUDA lane busy with a case waits up to 5 s; after
// a crash the process should exit promptly, whatever the number of lanes).
func closeAll(bs []gpu.Backend) {
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.Close()
		}()
	}
	wg.Wait()
}
