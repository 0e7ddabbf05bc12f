package triage

import (
	"strings"

	"github.com/moecheck/moecheck/oracle"
)

// Stages are the path's stages in path order (docs/path.md), as triage names them. A weight
// gradient stage covers its bias gradient.
var stageNames = []string{"routing plan", "xs", "h1", "act", "h2", "o", "y", "d_o", "d_rw", "d_h2", "d_act",
	"dW2/dB2", "d_h1", "d_xs", "dW1/dB1", "dX"}

// StageCrash is the stage name of a case the backend could not finish.
const StageCrash = "(case error)"

// Stages returns the stage names in path order.
func Stages() []string { return append([]string(nil), stageNames...) }

// StageIndex returns the position of a stage in path order (−1 if unknown; a case error
// sorts before every stage).
func StageIndex(stage string) int {
	if stage == StageCrash {
		return -1
	}
	for i, s := range stageNames {
		if s == stage {
			return i
		}
	}
	return len(stageNames)
}

// StageOf maps an oracle failure to its stage and says whether the failure is stage-local
// (the stage itself computed a wrong value from its own inputs) or end-to-end (the error may
// have arisen upstream).
func StageOf(f oracle.Failure) (stage string, local bool) {
	if f.Check == oracle.CheckCaseError {
		return StageCrash, true
	}
	if f.Check == oracle.CheckPlan {
		return "routing plan", true
	}
	name, isLocal := strings.CutSuffix(f.Tensor, "@local")
	switch name {
	case "offsets", "perm":
		return "routing plan", true
	case "xs", "h1", "act", "h2", "o", "d_o", "d_h2", "d_act", "d_h1", "d_xs":
		// stage tensors are always checked against their stage-local enclosure, except
		// by a bitwise comparison of two runs
		return name, f.Check != oracle.CheckBitwise
	case "y":
		return "y", isLocal
	case "dX":
		return "dX", isLocal
	case "drw", "d_rw":
		return "d_rw", isLocal
	case "dW2", "dB2":
		return "dW2/dB2", isLocal
	case "dW1", "dB1":
		return "dW1/dB1", isLocal
	}
	return name, false
}

// FirstStage returns the first stage in path order with a failure, preferring stage-local
// failures (the chain of local checks is complete, so the first local failure is where the
// error arises) and falling back to end-to-end failures when there are none (a backend
// without stages). Among the failures of that stage it prefers one whose location names a
// surviving signature buffer, then a non-finite one, then the verdict's order.
func FirstStage(fs []oracle.Failure) (stage string, f oracle.Failure, local bool, ok bool) {
	best := -1
	for pass := 0; pass < 2 && best < 0; pass++ {
		wantLocal := pass == 0
		for i, x := range fs {
			s, l := StageOf(x)
			if l != wantLocal {
				continue
			}
			if best < 0 || StageIndex(s) < StageIndex(stage) || (s == stage && rank(x) < rank(fs[best])) {
				best, stage, local = i, s, l
			}
		}
	}
	if best < 0 {
		return "", oracle.Failure{}, false, false
	}
	return stage, fs[best], local, true
}

// rank orders the failures of one stage for reporting: a named buffer first.
func rank(f oracle.Failure) int {
	switch {
	case f.Worst.Buffer != "":
		return 0
	case f.Check == oracle.CheckNonFinite:
		return 1
	case f.Check == oracle.CheckPlan:
		return 2
	}
	return 3
}
