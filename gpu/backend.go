package gpu

import (
	"context"
	"errors"
	"fmt"

	"github.com/moecheck/moecheck/moe"
)

// Backend is a path under test: it runs the MoE layer forward and backward on one case.
//
// Run must not modify c. A numerical mismatch is not an error: Run returns what the path
// produced and the oracle judges it. Run returns an error only when it could not produce a
// result; a *CaseError tells the caller that the failure belongs to this case (the device
// faulted, hung or ran out of memory) and that the next case may run. Any other error is an
// internal or device error that ends the run.
type Backend interface {
	// Name identifies the backend in reports ("sim", "cuda", ...).
	Name() string
	// Run executes forward and backward on c with the given options.
	Run(ctx context.Context, c *moe.Case, opts RunOptions) (*Result, error)
	// Close releases the backend's resources (device memory, worker processes).
	Close() error
}

// CaseErrorKind classifies a failure that ends one case but not the run.
type CaseErrorKind uint8

const (
	Crashed     CaseErrorKind = iota + 1 // the device faulted (illegal address, ...) or the worker died
	TimedOut                             // the case ran past its time limit (a hang)
	OutOfMemory                          // the device could not allocate the case's memory
	Raised                               // the path raised an exception (Detail: the exception and its traceback); the worker lives on
)

func (k CaseErrorKind) String() string {
	switch k {
	case Crashed:
		return "crash"
	case TimedOut:
		return "timeout"
	case OutOfMemory:
		return "oom"
	case Raised:
		return "raised"
	}
	return fmt.Sprintf("caseerror(%d)", uint8(k))
}

// CaseError is a failure of one case: the backend survived (or was restarted) and the run
// goes on. The oracle turns it into a crash/timeout/oom verdict that carries the case.
type CaseError struct {
	Kind   CaseErrorKind
	Detail string // what the device or worker said
	Err    error  // underlying error, if any
}

func (e *CaseError) Error() string {
	s := "gpu: case " + e.Kind.String()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *CaseError) Unwrap() error { return e.Err }

// AsCaseError reports whether err is (or wraps) a *CaseError and returns it.
func AsCaseError(err error) (*CaseError, bool) {
	var ce *CaseError
	ok := errors.As(err, &ce)
	return ce, ok
}
