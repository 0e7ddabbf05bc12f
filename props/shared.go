package props

import (
	"context"
	"fmt"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// trialCache is what the properties of one trial have in common, computed once and shared
// (issue 14, "cheaper properties"):
//
//   - the base run of the trial's case under a poison policy, with stages: matches judges
//     it, and deterministic (its first run), token-permutation (the unpermuted run),
//     power-of-two-scaling (the unscaled run) and poison-invariance (the zeros run and the
//     trial's own policy) compare against it. Each property still makes the runs its claim
//     needs beyond that one (deterministic a second run, poison-invariance a run per
//     policy, the stale pair back to back), so every claim is checked on genuine runs;
//   - matches' judgement of that run, when it passes a full stage-local check
//     (oracle.Judged): token-permutation takes from it the stage-local comparisons of its
//     permuted run that the oracle proves bitwise equal (oracle.Options.Derive; the
//     verdict is the full check's). Only matches judges the base run, so token-permutation
//     derives when matches ran before it in the trial (the default order); without it, it
//     checks its run in full, which costs less than judging the base run as well;
//
// The end-to-end enclosure of a case under the judging contract is kept apart (enclCache,
// contract.go): the runs of one case under every property and policy derive it once.
//
// The cache is keyed by the case pointer: a property's derived case (permuted, scaled,
// split) never hits it. It lives from the start of a trial's checks to their end (checkTrial,
// failsOn), so nothing of one case is held while the next runs.
type trialCache struct {
	c    *moe.Case
	runs map[gpu.Poison]*gpu.Result
	// judged holds, per poison policy, the base run as matches judged it (nil: not judged,
	// or not a pass of a full stage-local check)
	judged map[gpu.Poison]*oracle.Judged
	stop   <-chan struct{} // the trial's context's Done: stops a long oracle check
}

// begin starts the cache of trial case c, whose checks stop once stop is closed, and lets a
// backend that carries state between cases forget it (gpu.Forgetter): a trial's runs then
// see only each other, whatever the instance ran before (another job's cases, --jobs, the
// case order). A backend that could not forget is an error: the trial is not run.
func (env *Env) begin(c *moe.Case, stop <-chan struct{}) error {
	env.cache = trialCache{c: c, stop: stop}
	if err := gpu.Forget(env.Backend); err != nil {
		return fmt.Errorf("props: %s: forget the previous cases: %w", env.Backend.Name(), err)
	}
	return nil
}

// end drops the trial's cache, handing its runs' stage memory back to the backend.
func (env *Env) end() {
	for _, r := range env.cache.runs {
		env.recycle(r)
	}
	env.cache = trialCache{}
}

// recycler is a backend that takes back the stage memory of a Result nothing reads any more
// (sim.Backend.Recycle): its next Runs reuse it instead of allocating.
type recycler interface{ Recycle(r *gpu.Result) }

// recycle hands r's stages back to the backend where it takes them; r's stages must not be
// read after (its outputs stay valid).
func (env *Env) recycle(r *gpu.Result) {
	if rc, ok := env.Backend.(recycler); ok && r != nil {
		rc.Recycle(r)
	}
}

// baseSeed is the poison seed of the shared base runs.
const baseSeed = 1

// baseRun is the run of case c under poison with stages, shared by the properties of c's
// trial (see trialCache); for any other case it is a plain run.
func (env *Env) baseRun(ctx context.Context, name string, c *moe.Case, poison gpu.Poison) (*gpu.Result, *Outcome, error) {
	if c != nil && c == env.cache.c {
		if r, ok := env.cache.runs[poison]; ok {
			return r, nil, nil
		}
	}
	r, o, err := env.run(ctx, name, c, poison, baseSeed)
	if r != nil && c != nil && c == env.cache.c {
		if env.cache.runs == nil {
			env.cache.runs = map[gpu.Poison]*gpu.Result{}
		}
		env.cache.runs[poison] = r
	}
	return r, o, err
}

// checkBase judges run r of case c under poison with the oracle (check's options), with the
// case-only work pre prepared for it (env.prepare; nil: none): for the trial's base run
// (baseRun) it keeps the judgement where it can be derived from (env.judgedBase).
func (env *Env) checkBase(c *moe.Case, r *gpu.Result, poison gpu.Poison, pre *oracle.Prepared) (*oracle.Verdict, error) {
	v, j, err := env.checkJudged(c, r, oracle.Options{Prepared: pre})
	if err != nil || j == nil || c == nil || c != env.cache.c || r != env.cache.runs[poison] {
		return v, err
	}
	if env.cache.judged == nil {
		env.cache.judged = map[gpu.Poison]*oracle.Judged{}
	}
	env.cache.judged[poison] = j
	return v, nil
}

// prepare starts the oracle's case-only work for checkBase's judgement of case c's base run
// under poison, to run while the backend runs the case (oracle.Checker.Prepare, with the
// options checkJudged gives the check): nil — no goroutine, nothing held — for a case too
// small for it to pay (Prepare's threshold), when the base run is already made (nothing to
// overlap), and when the check will not be a full stage-local one (NoStages, Sample). The
// caller closes what it returns.
func (env *Env) prepare(c *moe.Case, poison gpu.Poison) *oracle.Prepared {
	if c == nil || env.NoStages || env.Sample.On() {
		return nil
	}
	if c == env.cache.c {
		if _, ok := env.cache.runs[poison]; ok {
			return nil
		}
	}
	return env.checker.Prepare(c, oracle.Options{Contract: env.JudgeContract(), Stop: env.cache.stop, Trace: env.Trace})
}

// judgedBase is the trial's base run of case c under poison as checkBase judged it, nil
// when it was not (another case, not judged yet, or not a full stage-local pass).
func (env *Env) judgedBase(c *moe.Case, poison gpu.Poison) *oracle.Judged {
	if c == nil || c != env.cache.c {
		return nil
	}
	return env.cache.judged[poison]
}
