package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/backends"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/phase"
	"github.com/moecheck/moecheck/internal/worker"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// backendFlags select and configure the backend under test.
type backendFlags struct {
	backend      string
	faults       string
	noStages     bool
	timeout      time.Duration
	startTimeout time.Duration
	triage       bool   // ask a worker without stage capture for its op-level triage (moecheck triage)
	contract     string // --contract: the contract to judge under ("": the backend's)
	jobs         int    // cases run at once, each on its own backend instance (registerJobs)
	devices      string // CUDA device ordinals the jobs' workers are assigned to round-robin
	lanes        int    // --lanes-per-worker: jobs of one device per worker process (0: auto)
	hasJobs      bool   // registerJobs ran: --jobs and --devices exist on this command
	maxCases     int    // when > 0, the cases the command will run: never more jobs than that (check --spec/--preset: 1; replay: its records)
	jobsFlags    *pflag.FlagSet
}

// maxJobs bounds --jobs: each job is a backend instance (a worker process for worker
// backends), so an absurd count is refused rather than forking thousands of processes.
const maxJobs = 1024

// registerJobs adds --jobs and --devices (commands that run many cases).
func (f *backendFlags) registerJobs(fs *pflag.FlagSet) {
	f.hasJobs = true
	f.jobsFlags = fs
	fs.IntVar(&f.jobs, "jobs", runtime.GOMAXPROCS(0), "cases run at once, each job on its own backend instance (for worker backends a lane of a shared worker, see --lanes-per-worker, or a worker process); results and verdicts are the same for every value (default: the cores, for in-process backends and moecheck-worker backends such as cuda, whose jobs share one worker per device; for torch:… backends 4 per core, at most 64 per device, in workers of 4 lanes; one per --devices entry, else 1, for other worker backends and with --lanes-per-worker 1: several CUDA contexts time-slice one GPU)")
	fs.StringVar(&f.devices, "devices", "", "worker backends: CUDA device ordinals (comma list, e.g. 0,1,2,3); job k runs on device k mod len (its worker's -device / --device flag)")
	fs.IntVar(&f.lanes, "lanes-per-worker", 0, "worker backends: the jobs of one device share a worker process, up to this many as its lanes (one CUDA context, a stream per lane: docs/gpu.md, Lanes); a case that meets a crash, hang or out-of-memory of the shared worker is re-run alone before it is blamed. 1 = a worker process per job. 0 (default) = all of a device's jobs in one worker for moecheck-worker backends (cuda, worker, worker:…moecheck-worker …), 4 for torch:… (the GIL serialises each Python worker's own work: a few processes of a few lanes; docs/python.md, Lanes), 1 for other worker programs")
}

// jobPool opens the jobs' backends (job k on device k mod len(devs)) and closes them all.
// With lanes > 1 the jobs of one device share worker processes, lanes jobs per process.
type jobPool struct {
	a      *app
	f      *backendFlags
	devs   []string
	lanes  int // jobs per worker process (1: a process per job)
	mu     sync.Mutex
	bs     []gpu.Backend
	groups map[laneGroup][]gpu.Backend // the lanes of each shared worker, opened at first use
	// opening: the groups whose worker is starting (closed when it started or failed); the
	// workers of different groups start concurrently (a torch worker takes seconds).
	opening map[laneGroup]chan struct{}
	closed  bool // close ran: a worker that finishes starting afterwards is closed at once
}

// laneGroup names one shared worker: the device index and the group among its jobs.
type laneGroup struct{ dev, group int }

// deviceCount is the number of --devices entries (0 without the flag).
func (f *backendFlags) deviceCount() int {
	if d := strings.TrimSpace(f.devices); d != "" {
		return len(strings.Split(d, ","))
	}
	return 0
}

// pool checks --jobs and --devices and returns the pool the jobs' backends come from.
func (f *backendFlags) pool(a *app) (*jobPool, error) {
	if !f.hasJobs {
		f.jobs = 1 // a command without --jobs
	}
	if f.lanes < 0 || f.lanes > worker.MaxLanes {
		return nil, usageErr("--lanes-per-worker %d: want between 0 (auto) and %d", f.lanes, worker.MaxLanes)
	}
	lanes := f.lanes
	if lanes == 0 {
		lanes = backends.DefaultLanes(f.backend, "", a.getenv)
	}
	if f.jobsFlags != nil && !f.jobsFlags.Changed("jobs") {
		// Worker backends without lanes default to one job per device: on an H200, 16 CUDA
		// workers (16 contexts) sharing one GPU checked 8.5 cases/s against 19.5 for one.
		// With lanes the jobs of a device share one context and keep the cores' default;
		// torch:… workers (GIL-bound lanes, mostly waiting) default to backends.TorchJobs:
		// 4 per core, at most 64 per device.
		if r, err := backends.Resolve(f.backend, "", a.getenv); err == nil && r.Argv != nil && lanes == 1 {
			f.jobs = max(1, f.deviceCount())
		} else if strings.HasPrefix(strings.TrimSpace(f.backend), backends.TorchPrefix) {
			f.jobs = backends.TorchJobs(runtime.GOMAXPROCS(0), f.deviceCount())
		}
	}
	if f.jobs < 1 || f.jobs > maxJobs {
		return nil, usageErr("--jobs %d: want between 1 and %d", f.jobs, maxJobs)
	}
	if f.maxCases > 0 {
		// more jobs than cases only cost: an in-process backend's Run gets cores/jobs, and a
		// worker starts lanes no case uses
		f.jobs = min(f.jobs, f.maxCases)
	}
	p := &jobPool{a: a, f: f, lanes: lanes, groups: map[laneGroup][]gpu.Backend{}, opening: map[laneGroup]chan struct{}{}}
	if r, err := backends.Resolve(f.backend, "", a.getenv); err != nil || r.Argv == nil {
		p.lanes = 1 // in-process backends: an instance per job
	}
	if strings.TrimSpace(f.devices) != "" {
		seen := map[int]bool{}
		for _, d := range strings.Split(f.devices, ",") {
			d = strings.TrimSpace(d)
			n, err := strconv.Atoi(d)
			if err != nil || n < 0 {
				return nil, usageErr("--devices %q: %q is not a CUDA device ordinal (0, 1, ...)", f.devices, d)
			}
			if seen[n] {
				return nil, usageErr("--devices %q: device %d named twice", f.devices, n)
			}
			seen[n] = true
			p.devs = append(p.devs, strconv.Itoa(n))
		}
		if r, err := backends.Resolve(f.backend, "", a.getenv); err == nil && r.Argv == nil {
			return nil, usageErr("--devices: the %s backend runs on the CPU; devices need a worker backend (cuda, worker:..., torch:...)", f.backend)
		}
	}
	return p, nil
}

// start checks --jobs and --devices and opens job 0's backend: the pool (the caller closes
// it) and that backend, which the pool owns.
func (f *backendFlags) start(a *app) (*jobPool, gpu.Backend, error) {
	p, err := f.pool(a)
	if err != nil {
		return nil, nil, err
	}
	b, err := p.open(0)
	if err != nil {
		p.close()
		return nil, nil, err
	}
	return p, b, nil
}

// device is job k's CUDA device ("" without --devices).
func (p *jobPool) device(k int) string {
	if len(p.devs) == 0 {
		return ""
	}
	return p.devs[k%len(p.devs)]
}

// openUnowned opens job k's backend for a caller that closes it (nightly.Options.NewBackend).
// A lane of a shared worker is also closed by the pool (closing a lane twice is harmless).
func (p *jobPool) openUnowned(k int) (gpu.Backend, error) {
	if p.laned(k) {
		return p.lane(k)
	}
	return p.f.openOn(p.a, p.device(k))
}

// laned reports whether job k is a lane of a shared worker: with lanes, every job below
// --jobs (a job beyond, such as nightly's artifact backend, gets a worker of its own).
func (p *jobPool) laned(k int) bool { return p.lanes > 1 && k < p.f.jobs }

// lane returns job k's lane, starting its group's worker at the first job that needs it:
// the jobs of device d (k mod len(devs)) are numbered j = k div len(devs), and groups of
// p.lanes consecutive j share a worker.
func (p *jobPool) lane(k int) (gpu.Backend, error) {
	nd := max(1, len(p.devs))
	d, j := k%nd, k/nd
	onDev := (p.f.jobs - d + nd - 1) / nd // jobs of device d
	key := laneGroup{d, j / p.lanes}
	n := min(p.lanes, onDev-key.group*p.lanes)
	for {
		p.mu.Lock()
		if bs, ok := p.groups[key]; ok {
			p.mu.Unlock()
			return bs[j%p.lanes], nil
		}
		if ch, ok := p.opening[key]; ok {
			p.mu.Unlock()
			<-ch // another job of the group is starting its worker
			continue
		}
		ch := make(chan struct{})
		p.opening[key] = ch
		p.mu.Unlock()
		bs, err := p.f.openLanes(p.a, p.device(k), n) // outside the lock: groups start concurrently
		p.mu.Lock()
		delete(p.opening, key)
		close(ch)
		closed := p.closed
		if err == nil && !closed {
			p.groups[key] = bs
		}
		p.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if closed {
			for _, b := range bs {
				p.a.closeBackend(b)
			}
			return nil, errors.New("the run ended while a worker was starting")
		}
		return bs[j%p.lanes], nil
	}
}

// open opens job k's backend; close closes it.
func (p *jobPool) open(k int) (gpu.Backend, error) {
	if p.laned(k) {
		return p.lane(k)
	}
	b, err := p.f.openOn(p.a, p.device(k))
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.bs = append(p.bs, b)
	p.mu.Unlock()
	return b, nil
}

// env returns a props.NewEnv that opens job k's backend with env's faults and stages.
func (p *jobPool) env(env *props.Env) func(int) (*props.Env, error) {
	return func(k int) (*props.Env, error) {
		b, err := p.open(k)
		if err != nil {
			return nil, err
		}
		return &props.Env{Backend: b, Faults: env.Faults, NoStages: env.NoStages, Fit: env.Fit, Contract: env.Contract, New: env.New, Sample: env.Sample}, nil
	}
}

// close closes every backend the pool opened, all at once.
func (p *jobPool) close() {
	p.mu.Lock()
	bs := p.bs
	p.bs = nil
	for _, g := range p.groups {
		bs = append(bs, g...)
	}
	p.groups = map[laneGroup][]gpu.Backend{}
	p.closed = true
	p.mu.Unlock()
	// concurrently: a worker process takes a while to exit (a PyTorch worker ~0.5 s), and the
	// lanes of one worker wait for each other (closing a lane twice is harmless)
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Go(func() { p.a.closeBackend(b) })
	}
	wg.Wait()
}

// workerNote is the summary line on the pool's worker processes when any of them failed
// during the run: how many restarts, and how many cases the lanes of a shared worker re-ran
// alone after a failure of that worker (a crash, hang or out-of-memory of one case stops
// every lane of its process; the lone re-runs are what attributes it, and they run with the
// other lanes of that worker waiting). "" when nothing failed or there are no workers.
func (p *jobPool) workerNote() string {
	p.mu.Lock()
	var firsts []gpu.Backend // one backend per worker process: its restarts are the process's
	for _, b := range p.bs {
		firsts = append(firsts, b)
	}
	for _, g := range p.groups {
		if len(g) > 0 {
			firsts = append(firsts, g[0])
		}
	}
	p.mu.Unlock()
	procs, restarts, reruns, first := 0, 0, 0, ""
	for _, b := range firsts {
		if _, _, r, ok := worker.Info(b); ok {
			procs++
			restarts += r
			reruns += worker.Reruns(b)
			if first == "" {
				first = worker.FirstSharedFailure(b)
			}
		}
	}
	if restarts == 0 && reruns == 0 {
		return ""
	}
	note := fmt.Sprintf("workers: %d process(es); %d restart(s); %d case(s) re-run alone after a failure of a shared worker", procs, restarts, reruns)
	if first != "" {
		const max = 400
		if len(first) > max {
			first = first[:max] + "…"
		}
		note += "; the first: " + strings.ReplaceAll(first, "\n", " | ")
	}
	return note
}

const backendHelp = "backend under test: " + backends.Help

func (f *backendFlags) register(fs *pflag.FlagSet, faults bool) {
	fs.StringVar(&f.backend, "backend", "sim", backendHelp)
	fs.DurationVar(&f.timeout, "case-timeout", worker.DefaultTimeout, "worker backends: a case running longer is a hang (recorded, the worker restarts)")
	fs.DurationVar(&f.startTimeout, "worker-start-timeout", worker.DefaultStartTimeout, "worker backends: a worker that has not said hello by then (CUDA init and PTX JIT included) is a device error")
	fs.BoolVar(&f.noStages, "no-stages", false, "do not ask for stage intermediates: end-to-end checks only, as for a black-box backend")
	fs.StringVar(&f.contract, "contract", "", "judge under this path contract ("+strings.Join(contract.Names(), ", ")+", each optionally followed by +"+strings.Join(contract.Modifiers(), ", +")+"; default: the one the backend declares, exact for sim and cuda, torch for sim-torch, a worker's from its hello)")
	if faults {
		fs.StringVar(&f.faults, "faults", "", "switch on catalog faults in the backend (comma list, for demos and mutation testing; see 'moecheck mutants --help')")
	}
}

func (f *backendFlags) faultSet() (fault.Set, error) {
	fs, err := fault.ParseSet(f.faults)
	if err != nil {
		return 0, usageErr("--faults: %v", err)
	}
	return fs, nil
}

// contractFlag parses --contract: nil when it is not given (the backend's own contract).
func (f *backendFlags) contractFlag() (*contract.Contract, error) {
	if f.contract == "" {
		return nil, nil
	}
	ct, err := contract.ByName(f.contract)
	if err != nil {
		return nil, usageErr("--contract: %v", err)
	}
	return &ct, nil
}

// contractRepro is the --contract value reproduce lines carry: the override's name when it
// differs from the backend's own contract, else "".
func contractRepro(env *props.Env) string {
	if env.ContractOverridden() {
		return env.JudgeContract().String()
	}
	return ""
}

// fresh is the props.Env.New of the history property: it opens another instance of the
// backend as the flags name it. Nil for a worker backend (a fresh worker per case would cost
// a process start, CUDA initialisation included, for every case): there the history property
// runs its pair on the worker itself and judges the second run within its enclosure.
func (f *backendFlags) fresh(a *app, b gpu.Backend) func() (gpu.Backend, error) {
	if _, _, _, ok := worker.Info(b); ok {
		return nil
	}
	return func() (gpu.Backend, error) { return f.open(a) }
}

// open starts the backend: errors in the name are usage errors, a worker that cannot start
// is a device error.
func (f *backendFlags) open(a *app) (gpu.Backend, error) { return f.openOn(a, "") }

// openOn is open with the worker on a CUDA device ("": the worker's default).
func (f *backendFlags) openOn(a *app, device string) (gpu.Backend, error) {
	bs, err := f.openLanes(a, device, 1)
	if err != nil {
		return nil, err
	}
	return bs[0], nil
}

// openLanes opens n lanes of one worker on a CUDA device ("": the worker's default).
func (f *backendFlags) openLanes(a *app, device string, n int) ([]gpu.Backend, error) {
	wd, _ := os.Getwd()
	if f.timeout <= 0 || f.startTimeout <= 0 {
		return nil, usageErr("--case-timeout %v, --worker-start-timeout %v: both must be positive", f.timeout, f.startTimeout)
	}
	workers := 0 // an in-process backend's Run may use every core, or its share of them with --jobs
	if f.jobs > 1 {
		workers = max(1, runtime.GOMAXPROCS(0)/f.jobs)
	}
	ph := phase.New(a.trace(), "trace: ").Start("open backend") // a worker's start and hello (CUDA: its context)
	bs, err := backends.OpenLanes(f.backend, backends.Options{Timeout: f.timeout, StartTimeout: f.startTimeout, Triage: f.triage, Dir: wd, Getenv: a.getenv, Device: device, Workers: workers, Trace: a.trace()}, n)
	ph.End()
	var ne *backends.NameError
	switch {
	case errors.As(err, &ne):
		return nil, usageErr("--backend: %v", ne.Err)
	case err != nil:
		return nil, internalErr(err)
	}
	return bs, nil
}

// noStages hides a backend's stage capture (for props.Mutants, whose Env asks for stages).
type noStages struct{ gpu.Backend }

func (n noStages) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	o.Stages = false
	return n.Backend.Run(ctx, c, o)
}

// quote quotes a shell argument when needed (for reproduce lines).
func quote(s string) string { return props.ShellQuote(s) }

// closeBackend closes b; after an interrupt it waits at most 250 ms, because a backend
// may be busy with an abandoned computation (the sim's Close waits for its Run) and the
// process is about to exit anyway (a worker client, killed by the interrupt, closes at once).
func (a *app) closeBackend(b gpu.Backend) {
	if a.ctx.Err() == nil {
		ph := phase.New(a.trace(), "trace: ").Start("close backend") // a worker's exit
		b.Close()
		ph.End()
		return
	}
	done := make(chan struct{})
	go func() {
		b.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(250 * time.Millisecond):
	}
}
