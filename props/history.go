package props

import (
	"context"
	"fmt"
	"time"

	"github.com/leanovate/gopter"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// history: a case run right after another case on the same backend instance gives what a
// fresh instance gives: no state is carried from run to run (a persistent weight-gradient
// buffer that only experts with rows overwrite, a cache keyed on the wrong thing). The first
// case of the pair is the trial's Prior, or one derived from the trial (PriorOf); the fresh
// instance comes from Env.New (without it, as for worker backends, the pair runs on the
// backend itself and the second run is only judged within its enclosure). Bitwise
// where the contract promises bitwise reruns; otherwise both runs are judged within their
// enclosure. Shrinking keeps the pair: the second case shrinks with the first fixed, then the
// first with the second fixed (ShrinkFailure).
var history = Property{
	Name:       "history",
	Doc:        "a case run right after another case on the same backend instance gives what a fresh instance gives (no state carried between runs)",
	Promise:    promiseDeterministic,
	PromiseDoc: "bitwise reruns (the fresh instance's run is a rerun)",
	Check: func(ctx context.Context, env *Env, t Trial) (*Outcome, error) {
		const name = "history"
		prior, err := PriorOf(t)
		if err != nil {
			return nil, err
		}
		if env.New == nil {
			// No fresh instance (a worker backend: a new process per case would cost its
			// start-up, 15 s for a PyTorch worker): the pair runs on the backend itself and
			// the second run is judged within its enclosure, as matches judges it. That
			// catches carried state that leaves the bounds or breaks an always-exact check
			// (stale weight gradients of experts without rows, a stale tail); only the
			// bitwise comparison with a fresh instance's run is left out.
			if _, o, err := env.runOutputs(ctx, name, prior.Case, prior.Poison, 17); o != nil || err != nil {
				return o, err
			}
			after, o, err := env.run(ctx, name, t.Case, t.Poison, 17)
			if o != nil || err != nil {
				return o, err
			}
			return env.weakened(name, run1{t.Case, after, "after another case (no fresh instance: judged within its enclosure only)"})
		}
		// Both instances are fresh, so that the pair alone decides the outcome (what the
		// shared instance ran before would otherwise leak in, and the reproduce line, which
		// runs the pair in a new process, would not reproduce it).
		open := func() (*Env, func(), error) {
			b, err := env.New()
			if err != nil {
				return nil, nil, fmt.Errorf("props: history: opening a fresh instance: %w", err)
			}
			ct := env.JudgeContract()
			return &Env{Backend: b, Faults: env.Faults, NoStages: env.NoStages, Contract: &ct}, func() { b.Close() }, nil
		}
		used, done, err := open()
		if err != nil {
			return nil, err
		}
		defer done()
		// Stages are captured only where something reads them: the prior run's result is
		// not read at all, and the bitwise comparison reads the outputs; only the judgement
		// within the enclosures (no bitwise promise) checks the two runs stage by stage.
		promised := env.promises(promiseDeterministic)
		run := func(e *Env, c *moe.Case, p gpu.Poison, judged bool) (*gpu.Result, *Outcome, error) {
			if judged && !promised {
				return e.run(ctx, name, c, p, 17)
			}
			return e.runOutputs(ctx, name, c, p, 17)
		}
		if _, o, err := run(used, prior.Case, prior.Poison, false); o != nil || err != nil {
			return o, err
		}
		after, o, err := run(used, t.Case, t.Poison, true)
		if o != nil || err != nil {
			return o, err
		}
		fresh, done2, err := open()
		if err != nil {
			return nil, err
		}
		defer done2()
		first, o, err := run(fresh, t.Case, t.Poison, true)
		if o != nil || err != nil {
			return o, err
		}
		if !promised {
			return env.weakened(name, run1{t.Case, after, "after another case"}, run1{t.Case, first, "on a fresh instance"})
		}
		if fs := oracle.CompareBitwise(t.Case, first, after, "after another case vs on a fresh instance"); len(fs) > 0 {
			return failed(name, fs, nil, ""), nil
		}
		return pass(name, nil), nil
	},
}

// PriorOf is the case the history property runs before t's: t.Prior when set; for a trial
// from a spec, PriorSpec of it; otherwise t's case with every real expert id moved to the
// next expert (so that experts empty in t get rows), its local routing only.
func PriorOf(t Trial) (Trial, error) {
	if t.Prior != nil {
		return *t.Prior, nil
	}
	if t.Origin.Kind == FromSpec {
		return SpecTrial(PriorSpec(t.Origin.Spec))
	}
	c := t.Case.Clone()
	c.Global = nil
	for s, id := range c.Routing.IDs {
		if id != int32(c.E) {
			c.Routing.IDs[s] = (id + 1) % int32(c.E)
		}
	}
	return Trial{Case: c, Poison: t.Poison}, nil
}

// PriorSpec is the spec the history property runs before s when no prior is given: s with
// another seed, uniform routing, unit weights and normal data — the same shapes (so a buffer
// kept between runs keeps its size) and, usually, rows on the experts s leaves empty.
func PriorSpec(s Spec) Spec {
	p := s.normalized()
	p.Seed = int((uint32(p.Seed)*2654435761 + 1) & 0x7fffffff)
	p.Routing = int(Uniform)
	p.Weights = int(UnitWeights)
	p.Data = int(moe.Normal)
	return p
}

// PairTrial is the trial of spec then run after spec first (the history property's pair).
func PairTrial(first, then Spec) (Trial, error) {
	a, err := SpecTrial(first)
	if err != nil {
		return Trial{}, err
	}
	b, err := SpecTrial(then)
	if err != nil {
		return Trial{}, err
	}
	b.Prior = &a
	return b, nil
}

// shrinkPair minimizes a failing history pair: the second spec with the first fixed, then
// the first with the second fixed, then both together in H and I, each greedily like
// ShrinkFailure, repeated while a round shrinks (maxTries candidates in all), while wanted
// (shrinkFailure's) says so.
func shrinkPair(ctx context.Context, env *Env, spec Spec, shrinker gopter.Shrinker, maxTries int, wanted func() bool) (*Shrunk, error) {
	t0 := time.Now()
	first := PriorSpec(spec)
	cur := &Shrunk{Spec: spec}
	defer func() { cur.Elapsed = time.Since(t0) }()
	fails := func(a, b Spec) (*Outcome, Trial, bool, error) {
		t, err := PairTrial(a, b)
		if err != nil {
			return nil, Trial{}, false, nil
		}
		o, err := history.failsOn(ctx, env, t)
		if _, ok := unsupported(err); ok {
			return nil, t, false, nil
		}
		return o, t, o != nil, err
	}
	o, t, ok, err := fails(first, spec)
	if err != nil || !ok {
		return cur, err
	}
	cur.Outcome, cur.Trial = o, t
	// Passes: the second case with the first fixed, the first with the second fixed, then
	// both together in the shapes they share (H, I: a buffer kept between runs keeps its
	// size only while both change together), and again until nothing shrinks.
	const (
		second = iota
		firstOnly
		joint
	)
	for round := 0; round < 3; round++ {
		before := cur.Steps
		for _, pass := range []int{second, firstOnly, joint} {
			for improved := true; improved && cur.Tries < maxTries; {
				improved = false
				base := first
				if pass != firstOnly {
					base = cur.Spec
				}
				next := shrinker(base)
				for cand, more := next(); more && cur.Tries < maxTries; cand, more = next() {
					if ctx.Err() != nil || !stillWanted(wanted) {
						return cur, nil
					}
					s, ferr := env.fit(cand.(Spec))
					if ferr != nil || s == base {
						continue
					}
					a, b := first, cur.Spec
					switch pass {
					case second:
						b = s
					case firstOnly:
						a = s
					case joint:
						if s.H == base.H && s.I == base.I {
							continue // not a change of the shared shapes
						}
						b = s
						a.H, a.I = s.H, s.I
						if a, ferr = env.fit(a); ferr != nil {
							continue
						}
					}
					cur.Tries++
					o, t, ok, err := fails(a, b)
					if err != nil {
						return cur, err
					}
					if ok {
						first, cur.Spec, cur.Outcome, cur.Trial = a, b, o, t
						cur.Steps++
						improved = true
						break
					}
				}
			}
		}
		if cur.Steps == before {
			break
		}
	}
	return cur, nil
}
