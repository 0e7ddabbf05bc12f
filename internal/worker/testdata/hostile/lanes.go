package main

import (
	"context"
	"fmt"
	"os"
	"strings"
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
//	lanes-forget-exit  on a forget request, exit after BadDelay without an answer (the
//	             process ends under the other lanes' cases in flight)
const (
	BadT     = 13
	SlowT    = 7
	BadDelay = 100 * time.Millisecond
	SlowTime = 600 * time.Millisecond
)

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
	bs := make([]gpu.Backend, n)
	for k := range bs {
		bs[k] = laneBackend{sim.New(sim.Options{}), strings.TrimPrefix(mode, "lanes-")}
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
}

func (b laneBackend) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	return b.RunFaults(ctx, c, o, 0)
}

// Forget misbehaves in mode forget-exit; otherwise it is the sim's.
func (b laneBackend) Forget() error {
	if b.mode == "forget-exit" {
		time.Sleep(BadDelay)
		fmt.Fprintln(os.Stderr, "hostile: exit on a forget request")
		os.Exit(1)
	}
	return b.Backend.Forget()
}

// RunFaults misbehaves, then runs the sim with the faults (Serve calls it: fault.Runner).
func (b laneBackend) RunFaults(ctx context.Context, c *moe.Case, o gpu.RunOptions, fs fault.Set) (*gpu.Result, error) {
	switch c.T {
	case SlowT:
		time.Sleep(SlowTime)
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
