package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/moecheck/moecheck/internal/phase"
	"github.com/moecheck/moecheck/internal/presets"
	"github.com/moecheck/moecheck/moe"
)

// Exit codes (docs/CONTRIBUTING.md).
const (
	exitPass     = 0
	exitFailures = 1
	exitUsage    = 2
	exitInternal = 3
)

// Env is what a command sees of its process: output writers, the environment, the clock.
// Tests pass buffers and a fake environment.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string // nil: no environment
	Now            func() time.Time    // nil: time.Now
	// Memory is the machine's memory in bytes (0: unknown). Cases whose check on the CPU
	// would need more than 3/4 of it are refused, naming the limit (caseLimits).
	Memory int64
}

// caseLimits are the size limits of the cases this process builds and checks: moe's
// defaults, and at most as many values as fit 3/4 of the machine's memory at
// presets.BytesPerElement bytes per value (the measured peak of a check on the CPU path),
// so that an oversized case is refused with the limit named instead of exhausting memory.
func (a *app) caseLimits() moe.Limits { return a.caseLimitsAt(presets.BytesPerElement) }

// caseLimitsAt is caseLimits for a check that needs bytesPerValue bytes a case value
// (presets.BytesPerElementSampledWorker for a sampled check through a worker).
func (a *app) caseLimitsAt(bytesPerValue int64) moe.Limits {
	var l moe.Limits
	if m := a.env.Memory; m > 0 {
		if max := m / 4 * 3 / bytesPerValue; max < moe.DefaultLimits().MaxElements {
			l.MaxElements = max
		}
	}
	return l
}

// exitError carries an exit code out of a command. A nil err means the command already
// printed what happened.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}
func internalErr(err error) error { return &exitError{code: exitInternal, err: err} }

var errFailures = &exitError{code: exitFailures}

// app holds one invocation's environment; commands are built around it, so nothing is
// global.
type app struct {
	ctx    context.Context
	env    Env
	stdout io.Writer
	stderr io.Writer
}

func (a *app) getenv(k string) string {
	if a.env.Getenv == nil {
		return ""
	}
	return a.env.Getenv(k)
}

// trace is where the phase timeline goes (package internal/phase): stderr when
// MOECHECK_TRACE is set, else nil (none).
func (a *app) trace() io.Writer {
	if a.getenv(phase.EnvVar) == "" {
		return nil
	}
	return a.stderr
}

func (a *app) now() time.Time {
	if a.env.Now != nil {
		return a.env.Now()
	}
	return time.Now()
}

// isTerminal reports whether w is a terminal (for the progress bar).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Execute runs the command line and returns the exit code.
func Execute(ctx context.Context, args []string, env Env) int {
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	a := &app{ctx: ctx, env: env, stdout: env.Stdout, stderr: env.Stderr}
	root := a.root()
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	_, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitPass
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(env.Stderr, prefixed(ee.err))
		}
		if ee.code == exitUsage {
			fmt.Fprintln(env.Stderr, "run 'moecheck help' or 'moecheck <command> --help' for usage")
		}
		return ee.code
	}
	// cobra's own errors: unknown command, bad flags, wrong number of arguments
	fmt.Fprintf(env.Stderr, "%s\nrun 'moecheck help' or 'moecheck <command> --help' for usage\n", prefixed(err))
	return exitUsage
}

// prefixed is the error line the CLI prints: "moecheck: " and the message, unless the message
// already starts with "moecheck" (no doubled prefix).
func prefixed(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "moecheck") {
		return msg
	}
	return "moecheck: " + msg
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "moecheck",
		Short: "Prove grouped-GEMM MoE paths correct against a float64 reference",
		Long: `moecheck checks Mixture-of-Experts grouped-GEMM paths (forward and backward) against a
float64 reference with derived error bounds, poisoned memory (NaN, ±Inf, huge, stale and
per-buffer signature fills), stage-by-stage checks and property-based testing with shrinking.

Backends: the pure-Go model of the GPU path (--backend sim, the default) or a worker process
(--backend worker:'moecheck-worker -backend cuda', or --backend cuda as a shorthand).

Exit status: 0 pass, 1 failures found, 2 usage error, 3 internal or device error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		CompletionOptions: cobra.CompletionOptions{
			HiddenDefaultCmd: true,
		},
	}
	// A flag that selects one case, given but empty, would silently fall back to the
	// command's default (a random run): refuse it.
	root.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		for _, name := range []string{"spec", "preset", "fuzz-file"} {
			if fl := c.Flags().Lookup(name); fl != nil && fl.Changed && strings.TrimSpace(fl.Value.String()) == "" {
				return usageErr("--%s is empty: give a value or leave the flag out", name)
			}
		}
		return nil
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr("%s: %v", c.CommandPath(), err)
	})
	root.AddCommand(a.checkCmd(), a.replayCmd(), a.saveCmd(), a.mutantsCmd(), a.triageCmd(), a.nightlyCmd(),
		a.reportCmd(), a.refCmd(), a.presetsCmd())
	return root
}
