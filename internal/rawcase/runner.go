package rawcase

import (
	"context"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
)

// Runner is a backend that runs a case given as its bits and returns its result as bits:
// RunBits is fault.Run(ctx, b, k.Case().Decode(), o, faults) with the result's values
// Result.Decode gives, the case not validated again. The result's bytes may be the backend's
// own buffers (gpu/cuda's download staging): they stay valid until the backend's next run or
// Close, and the caller does not write them.
type Runner interface {
	RunBits(ctx context.Context, k Checked, o gpu.RunOptions, faults fault.Set) (*Result, error)
}
