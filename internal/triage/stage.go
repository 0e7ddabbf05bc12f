package triage

import (
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/oracle"
)

// StageCrash is the stage of a case the backend could not finish.
const StageCrash = moe.StageCaseError

// order is a stage's position in path order (a case error first, an unknown stage last).
func order(s moe.Stage) int {
	if s == moe.StageNone {
		return 1 << 10
	}
	return int(s)
}

// FirstStage returns the first stage in path order with a failure, preferring stage-local
// failures (the chain of local checks is complete, so the first local failure is where the
// error arises) and falling back to end-to-end failures when there are none (a backend
// without stages). Among the failures of that stage it prefers one whose location names a
// surviving signature buffer, then a non-finite one, then the verdict's order. Each
// failure's stage is oracle.Failure.Stage.
func FirstStage(fs []oracle.Failure) (stage moe.Stage, f oracle.Failure, local bool, ok bool) {
	best := -1
	for pass := 0; pass < 2 && best < 0; pass++ {
		wantLocal := pass == 0
		for i, x := range fs {
			s, l := x.Stage()
			if l != wantLocal {
				continue
			}
			if best < 0 || order(s) < order(stage) || (s == stage && rank(x) < rank(fs[best])) {
				best, stage, local = i, s, l
			}
		}
	}
	if best < 0 {
		return moe.StageNone, oracle.Failure{}, false, false
	}
	return stage, fs[best], local, true
}

// rank orders the failures of one stage for reporting: a named buffer first.
func rank(f oracle.Failure) int {
	switch {
	case f.Worst.Buffer != gpu.Buffer(0):
		return 0
	case f.Check == oracle.CheckNonFinite:
		return 1
	case f.Check == oracle.CheckPlan:
		return 2
	}
	return 3
}
