package triage

import (
	"context"
	"fmt"
	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/internal/fault"
	"sort"
	"strings"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// Signature is what a path's failure on one case looks like: the (check, tensor) pairs of
// every failure over the triage runs, the first failing stage and where its worst element
// sits. Two faults with the same signature are indistinguishable on this case.
type Signature struct {
	// Items are "check tensor" pairs, sorted. Besides the oracle's checks, "rerun" marks a
	// result tensor that changed between two identical runs and "poison" one that changed
	// between zero-filled and NaN-filled memory.
	Items      []string
	FirstStage moe.Stage      // StageNone when nothing failed
	First      oracle.Failure // the first stage's failure (worst element in Worst)
	Local      bool           // the first stage's failure is stage-local
	Tail       bool           // the first stage's worst element is in the sentinel tail
	Failures   []oracle.Failure
}

// Empty reports whether nothing failed.
func (s Signature) Empty() bool { return len(s.Items) == 0 }

func (s Signature) String() string {
	if s.Empty() {
		return "(no failure)"
	}
	return fmt.Sprintf("first stage %s; %s", s.FirstStage, strings.Join(s.Items, ", "))
}

// observer runs a backend on one case the way triage does.
type observer struct {
	c  *moe.Case
	en *oracle.Enclosure // derived under ct
	ct contract.Contract
}

// observe runs b (with faults) on the case: stages under NaN and signature poison, once more
// under NaN (determinism) and once under zero fill (poison dependence); a stage-less backend
// is judged end to end.
func (o *observer) observe(ctx context.Context, b gpu.Backend, faults fault.Set) (Signature, error) {
	var sig Signature
	run := func(p gpu.Poison, stages bool) (*gpu.Result, bool, error) {
		r, err := fault.Run(ctx, b, o.c, gpu.RunOptions{Poison: p, PoisonSeed: 7, Stages: stages}, faults)
		if err != nil {
			if ce, ok := gpu.AsCaseError(err); ok {
				sig.Failures = append(sig.Failures, oracle.CaseErrorVerdict(ce).Failures...)
				return nil, false, nil
			}
			return nil, false, fmt.Errorf("triage: backend %s: %w", b.Name(), err)
		}
		return r, true, nil
	}
	check := func(r *gpu.Result) error {
		v, err := oracle.Check(o.c, r, oracle.Options{Enclosure: o.en, Contract: o.ct})
		if err != nil {
			return err
		}
		sig.Failures = append(sig.Failures, v.Failures...)
		return nil
	}
	rNaN, ok, err := run(gpu.PoisonNaN, true)
	if err != nil || !ok {
		return sig.finish(), err
	}
	if err := check(rNaN); err != nil {
		return sig, err
	}
	rSig, ok, err := run(gpu.PoisonSignature, true)
	if err != nil {
		return sig, err
	}
	if ok {
		if err := check(rSig); err != nil {
			return sig, err
		}
	}
	rAgain, ok, err := run(gpu.PoisonNaN, true)
	if err != nil {
		return sig, err
	}
	if ok {
		for _, f := range oracle.CompareBitwise(o.c, rNaN, rAgain, "run 2 vs run 1 (NaN poison)") {
			f.Check = "rerun"
			sig.Failures = append(sig.Failures, f)
		}
	}
	rZero, ok, err := run(gpu.PoisonZeros, true)
	if err != nil {
		return sig, err
	}
	if ok {
		for _, f := range oracle.CompareBitwise(o.c, rNaN, rZero, "zero-filled vs NaN-filled memory") {
			f.Check = "poison"
			sig.Failures = append(sig.Failures, f)
		}
	}
	return sig.finish(), nil
}

// finish merges the failures of the runs (one per (check, tensor) pair, preferring one that
// names a surviving buffer) and fills Items and the first stage.
func (s Signature) finish() Signature {
	type key struct {
		check  string
		tensor moe.Tensor
		local  bool
	}
	at := map[key]int{}
	var fs []oracle.Failure
	for _, f := range s.Failures {
		k := key{f.Check, f.Tensor, f.Local}
		i, ok := at[k]
		if !ok {
			at[k] = len(fs)
			fs = append(fs, f)
			continue
		}
		if fs[i].Worst.Buffer == 0 && f.Worst.Buffer != 0 {
			fs[i] = f
		}
	}
	s.Failures = fs
	s.Items = nil
	for k := range at {
		s.Items = append(s.Items, k.check+" "+oracle.Failure{Tensor: k.tensor, Local: k.local}.TensorName())
	}
	sort.Strings(s.Items)
	if st, f, local, ok := FirstStage(s.Failures); ok {
		s.FirstStage, s.First, s.Local, s.Tail = st, f, local, f.Worst.Sentinel
	}
	return s
}

// Similarity scores how alike two signatures are, in [0, 1]: 0.5 × the Jaccard index of
// their (check, tensor) sets, + 0.3 if the first stage is the same and then + 0.1 if the
// first failure's check is also the same and + 0.1 if both first failures are (or both are
// not) in the sentinel tail. An empty signature scores 0 against anything. The weights put
// the first stage (where the error arises) above the downstream spread (how it propagates).
func Similarity(a, b Signature) float64 {
	if a.Empty() || b.Empty() {
		return 0
	}
	inter := 0
	in := map[string]bool{}
	for _, x := range a.Items {
		in[x] = true
	}
	for _, x := range b.Items {
		if in[x] {
			inter++
		}
	}
	union := len(a.Items) + len(b.Items) - inter
	s := 0.5 * float64(inter) / float64(union)
	if a.FirstStage == b.FirstStage {
		s += 0.3
		if a.First.Check == b.First.Check {
			s += 0.1
		}
		if a.Tail == b.Tail {
			s += 0.1
		}
	}
	return s
}
