package simtorch

import (
	"context"
	"fmt"
	"sync"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Name is the backend's name; NameRPR its name with Options.ReducedPrecisionReduction.
const (
	Name    = "sim-torch"
	NameRPR = "sim-torch-rpr"
)

// Options configure a Backend. The zero value is valid: cases are checked against
// moe.DefaultLimits(), and the run-to-run order of the atomic adds starts from seed 0.
type Options struct {
	// Limits bounds the cases Run accepts; zero fields mean the moe.DefaultLimits() values.
	Limits moe.Limits
	// Seed seeds the order of the atomic adds (each Run draws a new order from it).
	Seed uint64
	// WGrad selects how the weight gradients are formed. The zero value, WGradDrawn, draws
	// one of the two forms per run, so both of transformers' experts paths are exercised.
	WGrad WGradMode
	// ReducedPrecisionReduction makes the bf16 and fp16 GEMMs reduce their split-K partial
	// sums in the dtype, as cuBLAS may under PyTorch's default
	// allow_{bf16,fp16}_reduced_precision_reduction (transformers' eager path runs each
	// expert through F.linear); the backend then declares the torch contract with that
	// freedom (contract.Contract.ReducedPrecisionReduction). The zero value accumulates every
	// GEMM in fp32 (torch._grouped_mm's CUTLASS kernels).
	ReducedPrecisionReduction bool
}

// WGradMode is how sim-torch forms the weight gradients dW1, dW2.
type WGradMode uint8

const (
	WGradDrawn WGradMode = iota // each Run draws WGradGEMM or WGradSlots
	WGradGEMM                   // the grouped GEMM's wgrad (transformers' grouped_mm)
	WGradSlots                  // per-slot products added by index_put_ (transformers' batched_mm)
)

// Backend is the PyTorch-eager model of the path. Runs on one Backend are serialized; each
// Run adds in a different order.
type Backend struct {
	opts Options
	mu   sync.Mutex
	runs uint64
	fr   *freedoms // the choices the model makes (nil: torchFreedoms; tests switch them)
}

var (
	_ gpu.Backend          = (*Backend)(nil)
	_ gpu.ContractDeclarer = (*Backend)(nil)
)

// New returns a sim-torch Backend.
func New(opts Options) *Backend { return &Backend{opts: opts} }

// Name returns "sim-torch" ("sim-torch-rpr" with Options.ReducedPrecisionReduction).
func (b *Backend) Name() string {
	if b.opts.ReducedPrecisionReduction {
		return NameRPR
	}
	return Name
}

// Contract returns contract.Torch() (with ReducedPrecisionReduction for bf16 and fp16 when
// Options.ReducedPrecisionReduction is set): the rounding freedoms this model exercises.
func (b *Backend) Contract() contract.Contract {
	if b.opts.ReducedPrecisionReduction {
		return contract.Torch().WithReduced(contract.Reduced{BF16: true, FP16: true})
	}
	return contract.Torch()
}

// Close does nothing (the model holds no resources).
func (b *Backend) Close() error { return nil }

// Run computes forward and backward on c. It returns an error for a case that does not
// validate against the limits, for any requested fault (the model reproduces none), and when
// ctx is done. It ignores the poison policy (every buffer is written before it is read) and
// the stage request.
func (b *Backend) Run(ctx context.Context, c *moe.Case, opts gpu.RunOptions) (*gpu.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim-torch: %w", err)
	}
	if err := c.Validate(b.opts.Limits); err != nil {
		return nil, fmt.Errorf("sim-torch: invalid case: %w", err)
	}
	p, err := c.Plan()
	if err != nil {
		return nil, fmt.Errorf("sim-torch: invalid case: %w", err)
	}
	b.mu.Lock()
	run := b.runs
	b.runs++
	b.mu.Unlock()
	rng := moe.NewRand(b.opts.Seed ^ run*0x9e3779b97f4a7c15)
	fr := torchFreedoms()
	if b.fr != nil {
		fr = *b.fr
	} else {
		switch b.opts.WGrad {
		case WGradGEMM:
			fr.wgradSlots = false
		case WGradSlots:
			fr.wgradSlots = true
		default:
			fr.wgradSlots = rng.IntN(2) == 1
		}
		fr.splitDtype = b.opts.ReducedPrecisionReduction
	}
	r := newRun(c, p, rng, fr)
	r.forward()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim-torch: %w", err)
	}
	r.backward()
	return r.result(), nil
}
