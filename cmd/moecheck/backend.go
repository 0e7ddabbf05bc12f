package main

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/moecheck/moecheck/contract"

	"github.com/moecheck/moecheck/internal/fault"
	"time"

	"github.com/spf13/pflag"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/backends"
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
	triage       bool // ask a worker without stage capture for its op-level triage (moecheck triage)
	contract     string
}

const backendHelp = "backend under test: " + backends.Help

func (f *backendFlags) register(fs *pflag.FlagSet, faults bool) {
	fs.StringVar(&f.backend, "backend", "sim", backendHelp)
	fs.DurationVar(&f.timeout, "case-timeout", worker.DefaultTimeout, "worker backends: a case running longer is a hang (recorded, the worker restarts)")
	fs.DurationVar(&f.startTimeout, "worker-start-timeout", worker.DefaultStartTimeout, "worker backends: a worker that has not said hello by then (CUDA init and PTX JIT included) is a device error")
	fs.BoolVar(&f.noStages, "no-stages", false, "do not ask for stage intermediates: end-to-end checks only, as for a black-box backend")
	fs.StringVar(&f.contract, "contract", "", "judge under this path contract ("+strings.Join(contract.Names(), ", ")+"; default: the one the backend declares, exact for sim and cuda, torch for sim-torch, a worker's from its hello)")
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
// is skipped, with a note.
func (f *backendFlags) fresh(a *app, b gpu.Backend) func() (gpu.Backend, error) {
	if _, _, _, ok := worker.Info(b); ok {
		return nil
	}
	return func() (gpu.Backend, error) { return f.open(a) }
}

// open starts the backend: errors in the name are usage errors, a worker that cannot start
// is a device error.
func (f *backendFlags) open(a *app) (gpu.Backend, error) {
	wd, _ := os.Getwd()
	if f.timeout <= 0 || f.startTimeout <= 0 {
		return nil, usageErr("--case-timeout %v, --worker-start-timeout %v: both must be positive", f.timeout, f.startTimeout)
	}
	b, err := backends.Open(f.backend, backends.Options{Timeout: f.timeout, StartTimeout: f.startTimeout, Triage: f.triage, Dir: wd, Getenv: a.getenv})
	var ne *backends.NameError
	switch {
	case errors.As(err, &ne):
		return nil, usageErr("--backend: %v", ne.Err)
	case err != nil:
		return nil, internalErr(err)
	}
	return b, nil
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
		b.Close()
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
