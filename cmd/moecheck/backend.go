package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/backends"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/gpu/worker"
	"github.com/moecheck/moecheck/moe"
)

// backendFlags select and configure the backend under test.
type backendFlags struct {
	backend  string
	faults   string
	noStages bool
	timeout  time.Duration
	triage   bool // ask a worker without stage capture for its op-level triage (moecheck triage)
}

const backendHelp = "backend under test: " + backends.Help

func (f *backendFlags) register(fs *pflag.FlagSet, faults bool) {
	fs.StringVar(&f.backend, "backend", "sim", backendHelp)
	fs.DurationVar(&f.timeout, "case-timeout", worker.DefaultTimeout, "worker backends: a case running longer is a hang (recorded, the worker restarts)")
	fs.BoolVar(&f.noStages, "no-stages", false, "do not ask for stage intermediates: end-to-end checks only, as for a black-box backend")
	if faults {
		fs.StringVar(&f.faults, "faults", "", "switch on catalog faults in the backend (comma list, for demos and mutation testing; see 'moecheck mutants --help')")
	}
}

func (f *backendFlags) faultSet() (gpu.FaultSet, error) {
	fs, err := gpu.ParseFaultSet(f.faults)
	if err != nil {
		return 0, usageErr("--faults: %v", err)
	}
	return fs, nil
}

// open starts the backend: errors in the name are usage errors, a worker that cannot start
// is a device error.
func (f *backendFlags) open(a *app) (gpu.Backend, error) {
	wd, _ := os.Getwd()
	res, err := backends.Resolve(f.backend, wd, a.getenv)
	if err != nil {
		return nil, usageErr("--backend: %v", err)
	}
	argv := res.Argv
	if argv == nil {
		return sim.New(sim.Options{}), nil
	}
	wo := worker.Options{Command: argv, Timeout: f.timeout, Triage: f.triage}
	if len(res.Env) > 0 {
		wo.Env = append(os.Environ(), res.Env...)
	}
	b, err := worker.New(wo)
	if err != nil {
		return nil, internalErr(fmt.Errorf("starting the worker %q: %w", strings.Join(argv, " "), err))
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
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
