package props

import (
	"context"
	"fmt"
	"time"

	"github.com/moecheck/moecheck/moe"
)

// ShrunkCase is the result of ShrinkTokens.
type ShrunkCase struct {
	Case    *moe.Case
	Trial   Trial         // the smallest failing trial: Case, the original's poison policy and origin
	Outcome *Outcome      // the failure of the smallest case
	Steps   int           // successful shrink steps
	Tries   int           // candidates tried
	Elapsed time.Duration // time spent shrinking
}

// ShrinkTokens shrinks a failing case that has no generating spec (a corpus file, a preset
// case) by removing tokens while property prop still fails on it: delta debugging over the
// token set (remove halves, then quarters, … then single tokens), at most maxTries candidates
// (0: 200). The weights, experts and sizes are kept, so the failure's location maps back to
// the original case's experts.
//
// The shrunk trial keeps the original's origin: the reproduce line rebuilds the original
// case, on which the property fails too.
func ShrinkTokens(ctx context.Context, env *Env, prop string, t Trial, maxTries int) (*ShrunkCase, error) {
	c := t.Case
	p, err := ByName(prop)
	if err != nil {
		return nil, err
	}
	if maxTries <= 0 {
		maxTries = 200
	}
	t0 := time.Now()
	with := func(k *moe.Case) Trial { u := t; u.Case = k; return u }
	fails := func(k *moe.Case) (*Outcome, error) { return p.failsOn(ctx, env, with(k)) }
	res := &ShrunkCase{Case: c, Trial: t}
	defer func() { res.Trial = with(res.Case) }()
	if res.Outcome, err = fails(c); err != nil {
		return nil, fmt.Errorf("props: shrinking: %w", err)
	}
	if res.Outcome == nil {
		return nil, fmt.Errorf("props: shrinking: property %s does not fail on the case", prop)
	}
	keep := make([]int, c.T)
	for i := range keep {
		keep[i] = i
	}
	n := 2
	for len(keep) > 1 && res.Tries < maxTries && ctx.Err() == nil {
		if n > len(keep) {
			n = len(keep)
		}
		chunk := (len(keep) + n - 1) / n
		removed := false
		for start := 0; start < len(keep) && res.Tries < maxTries; start += chunk {
			end := min(start+chunk, len(keep))
			cand := append(append([]int(nil), keep[:start]...), keep[end:]...)
			if len(cand) == 0 {
				continue
			}
			res.Tries++
			k := c.KeepTokens(cand)
			o, err := fails(k)
			if err != nil {
				return nil, fmt.Errorf("props: shrinking: %w", err)
			}
			if o != nil {
				keep, res.Case, res.Outcome = cand, k, o
				res.Steps++
				removed = true
				break
			}
		}
		switch {
		case removed:
			n = max(n-1, 2)
		case n >= len(keep):
			res.Elapsed = time.Since(t0)
			return res, nil // every single token is needed
		default:
			n = min(2*n, len(keep))
		}
	}
	res.Elapsed = time.Since(t0)
	return res, nil
}
