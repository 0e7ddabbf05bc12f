package worker

import (
	"fmt"
	"github.com/moecheck/moecheck/contract"
	"slices"
	"strings"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
)

// Capabilities is what a version-2 worker declares in its hello: the cases and options its
// path supports. A nil *Capabilities (a version-1 worker, or moecheck's own workers) supports
// everything. The JSON names are snake_case; python/moecheck/caps.py mirrors Check.
type Capabilities struct {
	DTypes   []string  `json:"dtypes"`   // case dtypes (bf16, fp16, fp32)
	Variants []Variant `json:"variants"` // supported (activation, layout, bias) combinations
	// EPGlobalRouting: the path applies the EP map itself (cases with global routing tensors).
	EPGlobalRouting bool `json:"ep_global_routing"`
	// Align: per dtype, H and I must be multiples of these (e.g. 8 for bf16 torch._grouped_mm).
	Align     map[string]Align `json:"align,omitempty"`
	NonFinite bool             `json:"non_finite"` // cases with NaN/±Inf inputs
	// Sentinels: the path takes sentinel ids (local id E: slots routed to another EP rank).
	// nil (absent from the hello) means true; false for a path that cannot take them (e.g.
	// transformers 5.17's eager experts, whose one_hot over E classes is a device-side assert
	// on id E: the worker flag --no-sentinels declares it). Cases with a sentinel id are then
	// unsupported and generation and shrinking produce sentinel-free cases (props.Support).
	Sentinels *bool    `json:"sentinels,omitempty"`
	Poisons   []string `json:"poisons"`  // poison policies honoured (gpu.Poison names)
	Stages    bool     `json:"stages"`   // stage intermediates in results
	Triage    bool     `json:"triage"`   // op-level triage text on request
	Faults    []string `json:"faults"`   // catalog faults it can switch on
	Contract  string   `json:"contract"` // the oracle contract its results obey (exact, torch, any)
}

// Variant is one supported (activation, layout, bias) combination.
type Variant struct {
	Act    string `json:"act"`    // swiglu | gptoss
	Layout string `json:"layout"` // standard | transposed
	Bias   bool   `json:"bias"`
}

// Align holds the multiples H and I must be.
type Align struct {
	H int `json:"h"`
	I int `json:"i"`
}

// Validate checks that the declaration names known dtypes, activations, layouts, poisons and
// faults, and positive alignments.
func (c *Capabilities) Validate() error {
	if c == nil {
		return nil
	}
	for _, d := range c.DTypes {
		if _, err := moe.ParseDType(d); err != nil {
			return fmt.Errorf("worker: capabilities: %w", err)
		}
	}
	for _, v := range c.Variants {
		if _, err := moe.ParseActivation(v.Act); err != nil {
			return fmt.Errorf("worker: capabilities: %w", err)
		}
		if _, err := moe.ParseLayout(v.Layout); err != nil {
			return fmt.Errorf("worker: capabilities: %w", err)
		}
	}
	for d, a := range c.Align {
		if _, err := moe.ParseDType(d); err != nil {
			return fmt.Errorf("worker: capabilities: align: %w", err)
		}
		if a.H < 1 || a.I < 1 || a.H > 1<<16 || a.I > 1<<16 {
			return fmt.Errorf("worker: capabilities: align %s h=%d i=%d outside [1, 65536]", d, a.H, a.I)
		}
	}
	for _, p := range c.Poisons {
		if _, err := gpu.ParsePoison(p); err != nil {
			return fmt.Errorf("worker: capabilities: %w", err)
		}
	}
	for _, f := range c.Faults {
		if _, err := fault.Parse(f); err != nil {
			return fmt.Errorf("worker: capabilities: %w", err)
		}
	}
	if c.Contract != "" {
		if _, err := contract.ByName(c.Contract); err != nil {
			return fmt.Errorf("worker: capabilities: %w", err)
		}
	}
	return nil
}

// SupportsConfig returns nil when a case of this configuration (global: with global routing;
// nonFinite: with non-finite inputs) is inside the capabilities, else an *gpu.UnsupportedError
// naming what is outside.
func (c *Capabilities) SupportsConfig(cfg moe.Config, global, nonFinite bool) error {
	if c == nil {
		return nil
	}
	d := cfg.DType.String()
	if !slices.Contains(c.DTypes, d) {
		return &gpu.UnsupportedError{Reason: fmt.Sprintf("dtype %s (supported: %s)", d, strings.Join(c.DTypes, ", "))}
	}
	if !slices.ContainsFunc(c.Variants, func(v Variant) bool {
		return v.Act == cfg.Act.String() && v.Layout == cfg.Layout.String() && v.Bias == cfg.Bias
	}) {
		var vs []string
		for _, v := range c.Variants {
			vs = append(vs, v.String())
		}
		return &gpu.UnsupportedError{Reason: fmt.Sprintf("variant %s (supported: %s)",
			Variant{cfg.Act.String(), cfg.Layout.String(), cfg.Bias}, strings.Join(vs, "; "))}
	}
	if global && !c.EPGlobalRouting {
		return &gpu.UnsupportedError{Reason: "EP global routing"}
	}
	if a, ok := c.Align[d]; ok && (a.H > 1 && cfg.H%a.H != 0 || a.I > 1 && cfg.I%a.I != 0) {
		return &gpu.UnsupportedError{Reason: fmt.Sprintf("H=%d, I=%d: %s needs H a multiple of %d and I a multiple of %d", cfg.H, cfg.I, d, a.H, a.I)}
	}
	if nonFinite && !c.NonFinite {
		return &gpu.UnsupportedError{Reason: "non-finite inputs"}
	}
	return nil
}

// SupportsOptions returns nil when the run options are inside the capabilities (stages are
// not checked: a backend without them runs end to end).
func (c *Capabilities) SupportsOptions(o gpu.RunOptions, faults fault.Set) error {
	if c == nil {
		return nil
	}
	if p := o.Poison.String(); !slices.Contains(c.Poisons, p) {
		return &gpu.UnsupportedError{Reason: fmt.Sprintf("poison %s (honoured: %s)", p, strings.Join(c.Poisons, ", "))}
	}
	for _, f := range faults.List() {
		if !slices.Contains(c.Faults, f.String()) {
			return &gpu.UnsupportedError{Reason: fmt.Sprintf("fault %s", f)}
		}
	}
	return nil
}

// Supports checks a case and its options.
func (c *Capabilities) Supports(cs *moe.Case, o gpu.RunOptions, faults fault.Set) error {
	if err := c.SupportsConfig(cs.Config, cs.Global != nil, cs.NonFinite); err != nil {
		return err
	}
	if err := c.SupportsRouting(cs.Config, cs.Routing); err != nil {
		return err
	}
	return c.SupportsOptions(o, faults)
}

// TakesSentinels reports whether the path takes sentinel ids (true unless declared false).
func (c *Capabilities) TakesSentinels() bool {
	return c == nil || c.Sentinels == nil || *c.Sentinels
}

// SupportsRouting returns nil when the routing is inside the capabilities: a path that cannot
// take sentinel ids gets none (derived runs that add sentinels, like zero-weight-is-sentinel
// or an ep-split-sum rank, are then unsupported and their property is skipped for the case).
func (c *Capabilities) SupportsRouting(cfg moe.Config, r moe.Routing) error {
	if c.TakesSentinels() {
		return nil
	}
	n := 0
	for _, id := range r.IDs {
		if int(id) >= cfg.E || id < 0 {
			n++
		}
	}
	if n > 0 {
		return &gpu.UnsupportedError{Reason: fmt.Sprintf("%d sentinel id(s): the target declares sentinels=false", n)}
	}
	return nil
}

func (v Variant) String() string {
	return fmt.Sprintf("%s/%s/bias=%t", v.Act, v.Layout, v.Bias)
}

// CapabilitiesOf returns the capabilities a worker backend declared (nil: everything, or not
// a worker backend).
func CapabilitiesOf(b gpu.Backend) *Capabilities {
	c, ok := b.(*client)
	if !ok {
		return nil
	}
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	return c.g.caps
}

// Contract is the path contract the worker declared in its hello's capabilities (package
// contract): the oracle judges its results under it unless --contract overrides it. A worker
// that declares none (a version-1 worker, moecheck's own workers, an empty string) conforms to
// the exact contract.
func (c *client) Contract() contract.Contract {
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	if c.g.caps == nil || c.g.caps.Contract == "" {
		return contract.Exact()
	}
	ct, err := contract.ByName(c.g.caps.Contract)
	if err != nil { // Validate refused it at hello
		return contract.Exact()
	}
	return ct
}

var _ gpu.ContractDeclarer = (*client)(nil)

// StderrTail returns the last bytes the worker wrote to its standard error (for reports).
func StderrTail(b gpu.Backend) string {
	c, ok := b.(*client)
	if !ok {
		return ""
	}
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	if c.g.proc == nil {
		return c.g.lastStderr
	}
	return c.g.proc.stderr.String()
}

// LastTriage returns the triage text of the worker's last result that carried one.
func LastTriage(b gpu.Backend) string {
	c, ok := b.(*client)
	if !ok {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastTriage
}
