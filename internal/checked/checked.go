package checked

import (
	"context"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
)

// Case is a moe.Case that passed Validate(moe.Limits{}) when Validate made it. The holder
// must not change the case afterwards. The zero Case holds no case.
type Case struct{ c *moe.Case }

// Validate checks c against moe's default limits and returns it marked as checked.
func Validate(c *moe.Case) (Case, error) {
	if err := c.Validate(moe.Limits{}); err != nil {
		return Case{}, err
	}
	return Case{c}, nil
}

// Case returns the checked case (nil for the zero Case).
func (k Case) Case() *moe.Case { return k.c }

// Runner is a backend with an entry point for checked cases: RunChecked is
// fault.Run(ctx, b, k.Case(), o, faults) without validating the case again.
type Runner interface {
	RunChecked(ctx context.Context, k Case, o gpu.RunOptions, faults fault.Set) (*gpu.Result, error)
}

// Run runs k on b: through b's RunChecked when it has one, else fault.Run.
func Run(ctx context.Context, b gpu.Backend, k Case, o gpu.RunOptions, faults fault.Set) (*gpu.Result, error) {
	if r, ok := b.(Runner); ok {
		return r.RunChecked(ctx, k, o, faults)
	}
	return fault.Run(ctx, b, k.Case(), o, faults)
}
