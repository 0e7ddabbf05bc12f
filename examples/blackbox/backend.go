package blackbox

import (
	"context"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/moe"
)

// Backend is a user's path under test. Run receives the case (inputs as float64 values
// exactly representable in c.DType, expert weights in c.Layout, routing in local ids with
// sentinel c.E) and must return the forward output and every gradient as float32 values of
// the dtype (see gpu.Result), filling its uninitialized buffers per opts.Poison.
type Backend struct {
	inner *sim.Backend // replace with your kernels
}

// New returns the example backend.
func New() *Backend { return &Backend{inner: sim.New(sim.Options{})} }

// Name identifies the backend in reports.
func (b *Backend) Name() string { return "blackbox-example" }

// Run runs the layer forward and backward. This example reports no stages, so moecheck
// judges it end to end only.
func (b *Backend) Run(ctx context.Context, c *moe.Case, opts gpu.RunOptions) (*gpu.Result, error) {
	opts.Stages = false
	return b.inner.Run(ctx, c, opts)
}

// Close releases resources.
func (b *Backend) Close() error { return b.inner.Close() }
