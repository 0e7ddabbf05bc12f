package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/worker"
	"github.com/moecheck/moecheck/moe"
)

// Lane modes ("lanes-<misbehaviour>"): the worker serves the lanes the client asks for
// (worker.LanesEnv) with gpu/sim, each case taking SlowT's delay when T == SlowT, and
// misbehaves on cases with T == BadT only, after BadDelay: the failure of the shared
// process then reaches the other lanes' cases in flight, which must not be blamed for it.
//
//	lanes-ok     no misbehaviour
//	lanes-crash  answer crash (the backend lost the device), then exit as moecheck-worker does
//	lanes-exit   exit mid-case without an answer (a signal, a driver abort)
//	lanes-hang   never answer (a hung kernel): the client's timeout kills the worker
//	lanes-oom    answer out of memory (the device is shared: it may be another lane's fault)
//	lanes-forget-exit  on a forget request, exit without an answer once a case of SlowT
//	             is in flight on another lane (the process ends under it); that case
//	             blocks until the process ends, and completes at once in a later process
//	             (its re-run alone), which a marker file in $HOSTILE_DIR tells (ForgetExitEnv)
const (
	BadT     = 13
	SlowT    = 7
	BadDelay = 100 * time.Millisecond
	SlowTime = 600 * time.Millisecond

	// ForgetExitEnv names the directory where mode lanes-forget-exit leaves its marker
	// (ForgetExitMarker) as it exits, so that the next process of the test knows it is the
	// re-run's; the mode needs it.
	ForgetExitEnv    = "HOSTILE_DIR"
	ForgetExitMarker = "forget-exited"
)

// forgetExit is what the lanes of a lanes-forget-exit process share: the order of events
// the mode enforces without timing (a forget ends the process only once a slow case is in
// flight on another lane; the slow case then never ends before the process).
type forgetExit struct {
	slow   chan struct{} // closed when a slow case is in flight
	once   sync.Once
	marker string // the marker file's path
}

// rerun reports whether an earlier process of the test exited on a forget (this process
// runs the case re-run alone).
func (f *forgetExit) rerun() bool {
	_, err := os.Stat(f.marker)
	return err == nil
}

// serveLanes serves a lanes-* mode; it returns the process's exit status.
func serveLanes(mode string) int {
	n, err := worker.LanesFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		return 2
	}
	lanes, err := worker.OpenLanes(n, os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		return 2
	}
	var fe *forgetExit
	if mode == "lanes-forget-exit" {
		dir := os.Getenv(ForgetExitEnv)
		if dir == "" {
			fmt.Fprintf(os.Stderr, "hostile: mode %s needs $%s (a directory for its marker)\n", mode, ForgetExitEnv)
			return 2
		}
		fe = &forgetExit{slow: make(chan struct{}), marker: filepath.Join(dir, ForgetExitMarker)}
	}
	bs := make([]gpu.Backend, n)
	for k := range bs {
		bs[k] = laneBackend{sim.New(sim.Options{}), strings.TrimPrefix(mode, "lanes-"), fe}
	}
	err = worker.ServeLanes(lanes, bs, worker.ServeOptions{Device: "hostile lanes"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		return 3
	}
	return 0
}

// laneBackend is gpu/sim with a misbehaviour on cases with T == BadT.
type laneBackend struct {
	*sim.Backend
	mode string
	fe   *forgetExit // mode forget-exit only
}

func (b laneBackend) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	return b.RunFaults(ctx, c, o, 0)
}

// Forget misbehaves in mode forget-exit (once a slow case is in flight on another lane: the
// marker, then exit); otherwise it is the sim's.
func (b laneBackend) Forget() error {
	if b.mode == "forget-exit" {
		<-b.fe.slow
		if err := os.WriteFile(b.fe.marker, nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "hostile:", err)
			os.Exit(3)
		}
		fmt.Fprintln(os.Stderr, "hostile: exit on a forget request")
		os.Exit(1)
	}
	return b.Backend.Forget()
}

// RunFaults misbehaves, then runs the sim with the faults (Serve calls it: fault.Runner).
func (b laneBackend) RunFaults(ctx context.Context, c *moe.Case, o gpu.RunOptions, fs fault.Set) (*gpu.Result, error) {
	switch c.T {
	case SlowT:
		if b.mode != "forget-exit" {
			time.Sleep(SlowTime)
		} else if !b.fe.rerun() {
			b.fe.once.Do(func() { close(b.fe.slow) })
			select {} // in flight until a forget ends the process
		}
	case BadT:
		time.Sleep(BadDelay)
		switch b.mode {
		case "crash":
			return nil, &gpu.CaseError{Kind: gpu.Crashed, Detail: "hostile: illegal address"}
		case "exit":
			os.Exit(1)
		case "hang":
			select {}
		case "oom":
			return nil, &gpu.CaseError{Kind: gpu.OutOfMemory, Detail: "hostile: out of memory"}
		}
	}
	return b.Backend.RunFaults(ctx, c, o, fs)
}
