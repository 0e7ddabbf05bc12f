package props

import (
	"github.com/moecheck/moecheck/gpu"
)

// Capability filtering. A backend may support only part of the case space (a PyTorch worker
// declares dtypes, variants, alignment, poisons; gpu/worker.Capabilities). Env.Fit maps a
// generated spec into that space (so generation and shrinking stay inside it); a case that
// still reaches the backend outside it gets a *gpu.UnsupportedError, which is counted
// (Report.Unsupported, CaseResult.Unsupported), never a failure and never a run-ending error.
// A property whose derived runs are unsupported (e.g. a poison policy the backend does not
// honour) is skipped for that case.

// fit applies env.Fit (the identity when nil).
func (env *Env) fit(s Spec) (Spec, error) {
	if env.Fit == nil {
		return s, nil
	}
	return env.Fit(s)
}

// unsupported reports whether err says the case is outside the backend's capabilities.
func unsupported(err error) (string, bool) {
	if u, ok := gpu.IsUnsupported(err); ok {
		return u.Reason, true
	}
	return "", false
}
