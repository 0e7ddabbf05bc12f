package props

import (
	"fmt"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/phase"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// Properties under a contract (docs/oracle.md §9.4). Every oracle check a property makes is
// judged under Env's contract (its rounding freedoms widen the enclosures). A metamorphic
// property compares its runs bitwise only where the contract makes the promise the property
// rests on (Property.Promise); where it does not, it judges every run it made within that
// run's enclosure under the contract — the derived bound: two values of cases whose exact
// results agree, each inside its enclosure (c_i, r_i) around the same float64 reference f,
// differ by at most Σ(|c_i − f| + r_i), so judging both sides enclosed is the strongest
// comparison the contract supports. The always-exact checks (no NaN/Inf where the reference is
// finite, no surviving poison, zero rows, zero weight gradients of experts without rows) stay
// bitwise under every contract.

// JudgeContract is the contract the properties judge under: Env.Contract when set, else the
// contract the backend declares (gpu.ContractOf; exact for a backend that declares none).
func (env *Env) JudgeContract() contract.Contract {
	if env.Contract != nil {
		return *env.Contract
	}
	if env.Backend == nil {
		return contract.Exact()
	}
	return gpu.ContractOf(env.Backend)
}

// ContractOverridden reports whether Env.Contract overrides the backend's declared contract
// with a different one (reproduce lines then carry --contract).
func (env *Env) ContractOverridden() bool {
	if env.Contract == nil {
		return false
	}
	if env.Backend == nil {
		return true
	}
	return env.Contract.String() != gpu.ContractOf(env.Backend).String()
}

// promises reports whether the environment's contract makes a promise.
func (env *Env) promises(promise func(contract.Promises) bool) bool {
	return promise(env.JudgeContract().Promises)
}

// The promises the metamorphic properties rest on (Property.Promise).
func promiseDeterministic(p contract.Promises) bool  { return p.Deterministic }
func promisePermutation(p contract.Promises) bool    { return p.PermutationInvariant }
func promiseZeroWeight(p contract.Promises) bool     { return p.ZeroWeightIsSentinel }
func promiseBatchInvariant(p contract.Promises) bool { return p.Deterministic && p.BatchInvariant }

// Judgement says how property p judges under contract ct: "" when it compares as its Doc says
// (bitwise where it says bitwise), else one line naming the promise the contract does not make
// and what the property checks instead.
func Judgement(p Property, ct contract.Contract) string {
	if p.Promise == nil || p.Promise(ct.Promises) {
		return ""
	}
	return fmt.Sprintf("contract %s does not promise %s: judged within bounds derived under %s, not bitwise", ct, p.PromiseDoc, ct)
}

// run1 is one run of a metamorphic property: its case and result.
type run1 struct {
	c    *moe.Case
	r    *gpu.Result
	what string
}

// enclosed judges every run within its own enclosure under the environment's contract (the
// oracle's full check: with stages stage-locally, else end to end) and returns the failures,
// each detail prefixed with the run it belongs to, and the last failing verdict.
func (env *Env) enclosed(runs ...run1) ([]oracle.Failure, *oracle.Verdict, error) {
	var fs []oracle.Failure
	var last *oracle.Verdict
	for _, x := range runs {
		v, err := env.check(x.c, x.r, oracle.Options{})
		if err != nil {
			return nil, nil, err
		}
		if v.Pass {
			continue
		}
		last = v
		for _, f := range v.Failures {
			if f.Detail == "" {
				f.Detail = x.what
			} else {
				f.Detail = x.what + ": " + f.Detail
			}
			fs = append(fs, f)
		}
	}
	return fs, last, nil
}

// weakened judges runs that the contract does not promise bitwise equal: each within its
// enclosure (see enclosed), as a property outcome.
func (env *Env) weakened(name string, runs ...run1) (*Outcome, error) {
	fs, v, err := env.enclosed(runs...)
	if err != nil {
		return nil, err
	}
	if len(fs) > 0 {
		return failed(name, fs, v, ""), nil
	}
	return pass(name, nil), nil
}

// enclCache keeps the end-to-end enclosure of the last case judged end to end, so that the
// runs of one case (poison policies, reruns, every property of a trial) derive it once.
type enclCache struct {
	c   *moe.Case
	cfg moe.Config
	ct  contract.Contract
	en  *oracle.Enclosure
}

// enclosure returns EncloseUnder(c, ct), reusing the last one when c is the same case (the
// same value, not modified: properties clone before they transform) under the same contract.
func (env *Env) enclosure(c *moe.Case, ct contract.Contract) (*oracle.Enclosure, error) {
	k := &env.encl
	if k.en != nil && k.c == c && k.cfg == c.Config && k.ct == ct {
		return k.en, nil
	}
	ph := phase.New(env.Trace, "trace: ").Start("end-to-end enclosure")
	en, err := oracle.EncloseUnder(c, ct)
	ph.End()
	if err != nil {
		return nil, err
	}
	*k = enclCache{c: c, cfg: c.Config, ct: ct, en: en}
	return en, nil
}
