package fault

import (
	"context"
	"fmt"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Runner is a backend that can switch on catalog faults. A backend that cannot reproduce a
// requested fault returns an error.
type Runner interface {
	RunFaults(ctx context.Context, c *moe.Case, opts gpu.RunOptions, faults Set) (*gpu.Result, error)
}

// Run runs c on b with the faults switched on: b.Run when the set is empty, otherwise
// through b's Runner (an error naming the backend when it has none).
func Run(ctx context.Context, b gpu.Backend, c *moe.Case, opts gpu.RunOptions, faults Set) (*gpu.Result, error) {
	if faults.Empty() {
		return b.Run(ctx, c, opts)
	}
	r, ok := b.(Runner)
	if !ok {
		return nil, fmt.Errorf("fault: backend %s cannot switch on faults (%s)", b.Name(), faults)
	}
	return r.RunFaults(ctx, c, opts, faults)
}
