package props

import (
	"context"
	"fmt"
	"math"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// poisonInvariance: the result is bitwise identical under every poison policy — zeros (fresh
// memory), NaN, ±Inf, huge, stale (the previous run's values: two runs in a row) and
// signature — and no signature NaN survives (the oracle names the buffer if one does).
var poisonInvariance = Property{
	Name:       "poison-invariance",
	Promise:    promiseDeterministic,
	PromiseDoc: "bitwise reruns (the runs under each poison policy are reruns)",
	Doc:        "bitwise identical results under every poison policy (zeros, NaN, ±Inf, huge, stale, signature); no surviving signature",
	Check: func(ctx context.Context, env *Env, t Trial) (*Outcome, error) {
		c := t.Case
		const name = "poison-invariance"
		base, o, err := env.baseRun(ctx, name, c, gpu.PoisonZeros)
		if o != nil || err != nil {
			return o, err
		}
		// Without bitwise reruns, every run is judged within its enclosure instead of against
		// the zeros run (the signature and non-finite checks stay exact).
		weak := !env.promises(promiseDeterministic)
		var fs []oracle.Failure
		if weak {
			if fs, _, err = env.enclosed(run1{c, base, "poison zeros"}); err != nil {
				return nil, err
			}
		}
		for _, p := range gpu.Poisons()[1:] {
			var r *gpu.Result
			if p == t.Poison && p != gpu.PoisonStale {
				r, o, err = env.baseRun(ctx, name, c, p) // the trial's own policy: shared with matches
			} else {
				r, o, err = env.runOutputs(ctx, name, c, p, 7)
			}
			if _, ok := unsupported(err); ok {
				continue // a policy the backend does not honour (its capabilities say which)
			}
			if o != nil || err != nil {
				return o, err
			}
			if p == gpu.PoisonStale { // the second run in a row sees the first one's values
				if r, o, err = env.runOutputs(ctx, name, c, p, 7); o != nil || err != nil {
					return o, err
				}
			}
			// A surviving signature or a non-finite value where the enclosure is finite are
			// the only failures kept from the oracle here, and both need a non-finite output
			// value: an all-finite result has neither, whatever the enclosure. The enclosure
			// is derived once per case and contract (Env.enclosure), shared by both policies.
			if !weak && (p == gpu.PoisonSignature || p == gpu.PoisonNaN) && !allFinite(c, r) {
				v, err := env.check(c, r, oracle.Options{SkipStages: true})
				if err != nil {
					return nil, err
				}
				for _, f := range v.Failures {
					if f.Check == oracle.CheckSignature || f.Check == oracle.CheckNonFinite {
						fs = append(fs, f)
					}
				}
			}
			if weak {
				efs, _, err := env.enclosed(run1{c, r, fmt.Sprintf("poison %s", p)})
				if err != nil {
					return nil, err
				}
				fs = append(fs, efs...)
			} else {
				fs = append(fs, oracle.CompareBitwise(c, base, r, fmt.Sprintf("poison %s vs zeros", p))...)
			}
			if len(fs) > 0 {
				return failed(name, fs, nil, ""), nil
			}
		}
		return pass(name, nil), nil
	},
}

// deterministic: two runs with the same inputs and poison are bitwise identical.
var deterministic = Property{
	Name:       "deterministic",
	Doc:        "two runs of the same case are bitwise identical",
	Promise:    promiseDeterministic,
	PromiseDoc: "bitwise reruns",
	Check: func(ctx context.Context, env *Env, t Trial) (*Outcome, error) {
		c, poison := t.Case, t.Poison
		const name = "deterministic"
		a, o, err := env.baseRun(ctx, name, c, poison) // shared with matches
		if o != nil || err != nil {
			return o, err
		}
		b, o, err := env.runOutputs(ctx, name, c, poison, 3)
		if o != nil || err != nil {
			return o, err
		}
		if !env.promises(promiseDeterministic) {
			return env.weakened(name, run1{c, a, "run 1"}, run1{c, b, "run 2"})
		}
		if fs := oracle.CompareBitwise(c, a, b, "run 2 vs run 1"); len(fs) > 0 {
			return failed(name, fs, nil, ""), nil
		}
		return pass(name, nil), nil
	},
}

// allFinite reports whether every output of r (oracle.Outputs(c)) is finite.
func allFinite(c *moe.Case, r *gpu.Result) bool {
	for _, t := range oracle.Outputs(c) {
		for _, v := range r.Tensor(t) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return false
			}
		}
	}
	return true
}
