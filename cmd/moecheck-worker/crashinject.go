package main

import (
	"context"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"strconv"
	"strings"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// crashShape is the -crash-shape flag: cases of exactly this shape (T, H, I, E, K) run with
// the crash fault switched on, so the backend faults for real (an illegal address on the
// GPU) on those cases only. It exists to show, in a real run, that a worker dying mid-case
// costs that one case: the client records it, restarts the worker and goes on.
type crashShape struct{ T, H, I, E, K int }

// parseCrashShape parses "T,H,I,E,K" (empty: none).
func parseCrashShape(s string) (*crashShape, error) {
	if s == "" {
		return nil, nil
	}
	p := strings.Split(s, ",")
	if len(p) != 5 {
		return nil, fmt.Errorf("-crash-shape %q: want T,H,I,E,K (5 integers)", s)
	}
	v := make([]int, 5)
	for i, f := range p {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-crash-shape %q: field %d is not a positive integer", s, i+1)
		}
		v[i] = n
	}
	return &crashShape{v[0], v[1], v[2], v[3], v[4]}, nil
}

func (s *crashShape) matches(c moe.Config) bool {
	return c.T == s.T && c.H == s.H && c.I == s.I && c.E == s.E && c.K == s.K
}

// crashOn wraps a backend: cases of the shape run with the crash fault.
type crashOn struct {
	gpu.Backend
	shape *crashShape
}

func (b crashOn) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	return b.RunFaults(ctx, c, o, 0)
}

// RunFaults passes the faults on (fault.Runner), adding Crash for cases of the shape.
func (b crashOn) RunFaults(ctx context.Context, c *moe.Case, o gpu.RunOptions, fs fault.Set) (*gpu.Result, error) {
	if b.shape.matches(c.Config) {
		fs |= fault.Of(fault.Crash)
	}
	return fault.Run(ctx, b.Backend, c, o, fs)
}

// Forget passes the trial's forget on to the wrapped backend (gpu.Forgetter).
func (b crashOn) Forget() error { return gpu.Forget(b.Backend) }
