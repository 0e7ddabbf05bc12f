package props

import (
	"context"
)

// matches: the forward output and every gradient lie in the oracle's enclosure, the exact
// contracts hold, no poison survives, and (with stages) every stage lies in its
// stage-local enclosure.
var matches = Property{
	Name: "matches",
	Doc:  "output and every gradient within the derived bounds; exact contracts; no surviving poison; every stage within its local bound",
	Check: func(ctx context.Context, env *Env, t Trial) (*Outcome, error) {
		c, poison := t.Case, t.Poison
		pre := env.prepare(c, poison) // the oracle's case-only work, while the backend runs (large cases)
		defer pre.Close()
		r, o, err := env.baseRun(ctx, "matches", c, poison) // shared with the comparing properties
		if o != nil || err != nil {
			return o, err
		}
		v, err := env.checkBase(c, r, poison, pre) // kept for token-permutation (shared.go)
		if err != nil {
			return nil, err
		}
		if !v.Pass {
			return failed("matches", v.Failures, v, ""), nil
		}
		return pass("matches", v), nil
	},
}
