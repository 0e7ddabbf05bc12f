package sim

import (
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
)

// faults are the switches of one Run, decoded from RunFaults' fault set. Where each acts:
//
//	ClampSentinel       route: sentinel ids become E−1 before the sort (plan.go)
//	MaskAfterWeight     masks: mask C dropped, the weighted rows o masked instead (forward.go)
//	NoMaskUpDgrad       masks: mask A and its backward dropped (forward.go, backward.go)
//	NoMaskDownDgrad     masks: mask B and its backward dropped (forward.go, backward.go)
//	EmptyExpertWgrad    wgrad: dW1[e], dW2[e] of an expert with no rows not written (backward.go)
//	HistogramSentinel   route: Counts[E−1] += sentinel count, so R = S (plan.go)
//	ExclusiveOffsets    route: Offsets exclusive cumulative sum (plan.go)
//	SentinelWrap        route: GEMM and wgrad group E−1 extended over the tail; masks: all dropped
//	CombineInDtype      combine: y accumulated in the dtype (forward.go)
//	AccumInDtype        gemm: every GEMM accumulator rounded to the dtype after each add (kernel.go)
//	GateUpSwapped       activation: gate and up columns swapped, forward and backward (activation.go)
//	EPNoRankOffset      route: the EP map of c.Global uses offset 0 instead of r·E (plan.go)
//	LastTileDropped     route: forward GEMM 1 and GEMM 2 skip each group's last partial tile (plan.go)
//	TailStaleUnmasked   route: GEMM group E−1 (not its wgrad) extended over the tail; masks: all dropped
//	NondeterministicSum combine and scatter-add: slot order rotated by run and token (forward.go, backward.go)
//	NeighbourWeights    route: the last GEMM group with rows reads expert (e−1 mod E)'s weights (plan.go)
//	ZeroTokenRow        combine: y row of the first token with a non-sentinel id stored as +0 (forward.go)
//	Crash               Run: returns a *gpu.CaseError before the path runs (sim.go)
//	StaleEmptyWgrad     wgrad: dW1[e], dW2[e] of an expert with no rows keep the previous run's (backward.go)
type faults struct {
	clampSentinel, maskAfterWeight, noMaskUpDgrad, noMaskDownDgrad, emptyExpertWgrad bool
	histogramSentinel, exclusiveOffsets, sentinelWrap, combineInDtype, accumInDtype  bool
	gateUpSwapped, epNoRankOffset, lastTileDropped, tailStaleUnmasked                bool
	nondeterministicSum, neighbourWeights, zeroTokenRow, crash                       bool
	staleEmptyWgrad                                                                  bool

	// The masks of docs/path.md that this run applies (each also drives its backward).
	maskA, maskB, maskC bool
	// maskO zeroes the weighted rows' tail instead of mask C (MaskAfterWeight).
	maskO bool
}

// decodeFaults maps a fault set to switches; a fault the sim does not know is an error.
func decodeFaults(set fault.Set) (faults, error) {
	var f faults
	if extra := set.Unknown(); extra != 0 {
		return f, fmt.Errorf("sim: unknown fault bits %#x in the fault set", uint64(extra))
	}
	for _, x := range set.List() {
		switch x {
		case fault.ClampSentinel:
			f.clampSentinel = true
		case fault.MaskAfterWeight:
			f.maskAfterWeight = true
		case fault.NoMaskUpDgrad:
			f.noMaskUpDgrad = true
		case fault.NoMaskDownDgrad:
			f.noMaskDownDgrad = true
		case fault.EmptyExpertWgrad:
			f.emptyExpertWgrad = true
		case fault.StaleEmptyWgrad:
			f.staleEmptyWgrad = true
		case fault.HistogramSentinel:
			f.histogramSentinel = true
		case fault.ExclusiveOffsets:
			f.exclusiveOffsets = true
		case fault.SentinelWrap:
			f.sentinelWrap = true
		case fault.CombineInDtype:
			f.combineInDtype = true
		case fault.AccumInDtype:
			f.accumInDtype = true
		case fault.GateUpSwapped:
			f.gateUpSwapped = true
		case fault.EPNoRankOffset:
			f.epNoRankOffset = true
		case fault.LastTileDropped:
			f.lastTileDropped = true
		case fault.TailStaleUnmasked:
			f.tailStaleUnmasked = true
		case fault.NondeterministicSum:
			f.nondeterministicSum = true
		case fault.NeighbourWeights:
			f.neighbourWeights = true
		case fault.ZeroTokenRow:
			f.zeroTokenRow = true
		case fault.Crash:
			f.crash = true
		default:
			return f, fmt.Errorf("sim: cannot reproduce fault %s", x)
		}
	}
	// SentinelWrap and TailStaleUnmasked: the tail rows are computed, and nothing masks them.
	unmasked := f.sentinelWrap || f.tailStaleUnmasked
	f.maskA = !f.noMaskUpDgrad && !unmasked
	f.maskB = !f.noMaskDownDgrad && !unmasked
	f.maskC = !f.maskAfterWeight && !unmasked
	f.maskO = f.maskAfterWeight && !unmasked
	return f, nil
}
