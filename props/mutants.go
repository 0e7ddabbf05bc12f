package props

import (
	"context"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"sync"
	"time"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
)

// MutantOptions tune Mutants. The zero value tests every fault in the catalog with a budget
// of 5000 cases or 30 s per fault, seed 1, default generator bounds.
type MutantOptions struct {
	Faults  []fault.Fault // default: the whole catalog
	Cases   int           // case budget per fault (default 5000)
	Timeout time.Duration
	Seed    uint64
	Gen     GenOptions
	// NoStages runs the suite as for a black-box backend (end-to-end checks only).
	NoStages bool
	// Jobs runs each fault's cases Jobs at a time (RunConfig.Jobs; 0 or 1: one at a time):
	// job 0 on the backend Mutants is given, job k on NewBackend(k), opened once and reused
	// for every fault. The caller closes what NewBackend returned. The results (caught, by
	// which property, after how many cases, the shrunk case) do not depend on Jobs.
	Jobs       int
	NewBackend func(job int) (gpu.Backend, error)
	// Contract, when set, is the contract every property judges under (nil: the backend's).
	Contract *contract.Contract
	// New opens a fresh instance of the backend for the history property (nil: skipped).
	New func() (gpu.Backend, error)
}

// MutantResult is the suite's record against one fault.
type MutantResult struct {
	Fault    fault.Info
	Caught   bool
	Property string        // the property that caught it
	Cases    int           // cases run until detection (or the budget)
	Elapsed  time.Duration // time to detection (or the budget)
	Shrunk   *Shrunk       // the minimized failing case
	Message  string
	// Unsupported: every case was outside the backend's capabilities (e.g. a fault the backend
	// does not reproduce): the fault was not tested.
	Unsupported bool
}

// The default budget per fault (MutantOptions zero values): DefaultMutantCases cases or
// DefaultMutantTimeout, whichever ends first; `moecheck mutants` uses the same defaults.
const (
	DefaultMutantCases   = 5000
	DefaultMutantTimeout = 30 * time.Second
)

// Mutants runs the default property suite against the backend with each fault switched on
// and reports, per fault, whether and how fast it was caught and how small the failing case
// shrank. onResult, if non-nil, is called as each fault finishes.

func Mutants(ctx context.Context, b gpu.Backend, o MutantOptions, onResult func(MutantResult)) ([]MutantResult, error) {
	faults := o.Faults
	if len(faults) == 0 {
		for _, fi := range fault.Catalog() {
			faults = append(faults, fi.Fault)
		}
	}
	if o.Cases == 0 {
		o.Cases = DefaultMutantCases
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultMutantTimeout
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	var out []MutantResult
	jobBackends := map[int]gpu.Backend{} // job k's backend, opened at the first fault that needs it
	var jobMu sync.Mutex                 // Run opens the jobs' environments concurrently
	for _, f := range faults {
		info, _ := f.Info()
		env := &Env{Backend: b, Faults: fault.Of(f), NoStages: o.NoStages, Contract: o.Contract, New: o.New}
		newEnv := func(k int) (*Env, error) {
			jobMu.Lock()
			jb, ok := jobBackends[k]
			jobMu.Unlock()
			if !ok {
				if o.NewBackend == nil {
					return nil, fmt.Errorf("props: mutants: %d jobs need MutantOptions.NewBackend", o.Jobs)
				}
				var err error
				if jb, err = o.NewBackend(k); err != nil {
					return nil, err
				}
				jobMu.Lock()
				jobBackends[k] = jb
				jobMu.Unlock()
			}
			return &Env{Backend: jb, Faults: fault.Of(f), NoStages: o.NoStages, Contract: o.Contract, New: o.New}, nil
		}
		t0 := time.Now()
		var detectedAt time.Duration
		rep, err := Run(ctx, RunConfig{Env: env, Seed: o.Seed, Cases: o.Cases, Duration: o.Timeout, Gen: o.Gen, Jobs: o.Jobs, NewEnv: newEnv,
			OnCase: func(cr CaseResult) {
				if !cr.Pass && detectedAt == 0 {
					detectedAt = time.Since(t0)
					if cr.Shrunk != nil {
						detectedAt -= cr.Shrunk.Elapsed // time to detect excludes shrinking
					}
				}
			}})
		if err != nil {
			return out, err
		}
		mr := MutantResult{Fault: info, Cases: rep.Cases, Elapsed: rep.Elapsed, Unsupported: rep.Cases == 0 && rep.Unsupported > 0}
		if len(rep.Failures) > 0 {
			cr := rep.Failures[0]
			mr.Caught = true
			mr.Property = cr.Failed.Property
			mr.Message = cr.Failed.Message
			mr.Elapsed = detectedAt
			mr.Shrunk = cr.Shrunk
		}
		out = append(out, mr)
		if onResult != nil {
			onResult(mr)
		}
	}
	return out, nil
}
