package fault

import (
	"fmt"
	"math/bits"
	"sort"
	"strings"
)

// Fault is a named, documented defect that a harness backend can switch on to reproduce a
// real bug class of grouped-GEMM MoE paths. The catalog (Catalog) is shared by the harness's
// backends: gpu/sim implements each in Go, gpu/cuda in its kernels, and the worker protocol
// carries them; a user's backend never sees them (see Runner). The mutation test runs the property suite
// against each fault and requires every one to be caught.
type Fault uint8

const (
	// ClampSentinel: sentinel ids are clamped to E−1 before the sort, so sentinel slots are
	// computed as expert E−1 (transformers #45473 → #45621).
	ClampSentinel Fault = iota + 1
	// MaskAfterWeight: GEMM 2's output tail is not masked; only the weighted rows are
	// (leak 1; transformers #45621 as merged): the routing-weight gradient reads the
	// unwritten tail.
	MaskAfterWeight
	// NoMaskUpDgrad: the gathered input's mask A is missing (forward and backward), so GEMM 1's
	// dgrad tail (never written) is scatter-added into d(hidden) of real tokens (leak 2;
	// transformers #48205).
	NoMaskUpDgrad
	// NoMaskDownDgrad: GEMM 1's output mask B is missing (forward and backward), so the
	// activation backward of GEMM 2's unwritten dgrad tail (0·Inf = NaN) reaches the weight
	// gradients through the bias gradient's index-add into expert E−1 (leak 3; transformers
	// #48205, maxtext #3699). Visible in dB1, so only on cases with biases.
	NoMaskDownDgrad
	// EmptyExpertWgrad: wgrad (dW1[e], dW2[e]) of an expert with no rows is never written; the
	// bias gradients, an index-add, still are (tgale96/grouped_gemm #36, meta-pytorch/MSLK
	// #158, pytorch #172439).
	EmptyExpertWgrad
	// HistogramSentinel: the histogram counts the sentinel bin into the last expert, so
	// offsets[E−1] = S and sentinel rows are computed as expert E−1 and never masked
	// (torch.histc clamps the top value into the last bin).
	HistogramSentinel
	// ExclusiveOffsets: offsets are an exclusive instead of inclusive cumulative sum
	// (off-by-one: every expert reads its predecessor's rows, the last expert's rows are
	// treated as tail).
	ExclusiveOffsets
	// SentinelWrap: the sentinel is −1 and indexes the weights with wrap-around, so sentinel
	// rows run with the last expert's weights and are not masked (vLLM PR #46408,
	// sglang #40498). The rows keep their place in the sorted tail; GEMM group E−1 extends
	// over the tail in GEMM 1, GEMM 2, both dgrads and both wgrads (the wrapped rows add into
	// W[−1] = W[E−1]'s gradient), with E−1's bias; no mask (A, B, C) applies.
	SentinelWrap
	// CombineInDtype: the K-slot combine (step 9, not the scatter-add) accumulates in the
	// dtype instead of fp32. Invisible for K ≤ 2 (0 + a + b rounds once either way).
	CombineInDtype
	// AccumInDtype: every GEMM (forward, dgrads, wgrads) accumulates in the dtype instead of
	// fp32: the accumulator is rounded to the dtype after each add.
	AccumInDtype
	// GateUpSwapped: the activation reads gate and up from each other's halves (and its
	// backward writes their gradients to the swapped columns).
	GateUpSwapped
	// EPNoRankOffset: the global→local id map ignores the rank offset: rank r treats global
	// experts [0, E) as its own (flashinfer #3547: shards with offset > 0 gave zeros). It acts
	// in the map (docs/path.md step 1), so only on cases that carry the global routing
	// (moe.Case.Global) on a rank r > 0; elsewhere it has no effect.
	EPNoRankOffset
	// LastTileDropped: GEMM 1 and GEMM 2 (forward) skip the last partial row tile of each
	// expert: with n rows, rows [⌊n/TileRows⌋·TileRows, n) of the group stay unwritten when
	// n is not a multiple of TileRows (vLLM PR #49087, by rows). The dgrads compute them.
	LastTileDropped
	// TailStaleUnmasked: the GEMMs write the sentinel tail rows with stale finite values (as
	// if they belonged to the last expert) and no mask zeroes them: GEMM group E−1 extends
	// over the tail in GEMM 1, GEMM 2 and both dgrads (E−1's weights and bias), not in the
	// wgrads; no mask (A, B, C) applies.
	TailStaleUnmasked
	// NondeterministicSum: the K-slot combine and the d(hidden) scatter-add sum the slots in
	// a different order on every run (atomics without a fixed order): the order k = 0..K−1 is
	// rotated by an amount that changes with every run of the backend (gpu/sim: run index + t
	// for token t). Bits change only where the fp32 sum is inexact: K ≥ 3, in practice fp32
	// values (a sum of a few bf16/fp16 values is usually exact in fp32).
	NondeterministicSum
	// NeighbourWeights: the last expert with rows runs with its neighbour's (e−1, cyclic)
	// weights in both GEMMs, forward and backward (a wrong per-group pointer): W1 and W2 of
	// expert (e−1 mod E) in GEMM 1, GEMM 2 and both dgrads; its own bias; its weight gradients
	// still go to its own dW[e]. "Last expert with rows" is the last GEMM group with rows (as
	// the path grouped them). No effect with E = 1.
	NeighbourWeights
	// ZeroTokenRow: the output row of the first token that has a real slot is left at zero
	// (a dropped store): y[t,:] = +0 for the lowest t with a slot whose id, as the path sorts
	// it (after the EP map and any clamp), is not the sentinel. Only y; no effect when no
	// token has a real slot.
	ZeroTokenRow
	// Crash: the path faults on the device (an illegal address on the GPU; gpu/sim reports a
	// simulated crash). Used to test that a crash costs exactly one case.
	Crash
	// StaleEmptyWgrad: the weight gradients live in a buffer that persists between runs of
	// the backend instance, and the wgrad kernel writes only experts with rows: dW1[e] and
	// dW2[e] of an expert without rows keep the previous run's values (when the previous
	// run had the same per-expert shape; a fresh or reallocated buffer is zero). A fresh
	// instance, or any case run first, is correct: only a case run after another one shows it
	// (issue 12's history property).
	StaleEmptyWgrad
	numFaults
)

// TileRows is the row-tile height LastTileDropped refers to.
const TileRows = 16

// Info documents one fault.
type Info struct {
	Fault      Fault
	Name       string // stable kebab-case name used on command lines and in reports
	Doc        string // what the defect does
	Provenance string // the real bug it reproduces (an issue or PR of the project it was found in)
}

// catalogTable lists every fault with its documentation, in a stable order.
var catalogTable = []Info{
	{ClampSentinel, "clamp-sentinel", "sentinel ids clamped to E−1 and computed as the last expert", "transformers #45473 → #45621"},
	{MaskAfterWeight, "mask-after-weight", "GEMM 2 tail not masked, only the weighted rows: routing-weight gradient reads the unwritten tail (leak 1)", "transformers #45621 as merged"},
	{NoMaskUpDgrad, "no-mask-up-dgrad", "gathered-input mask missing: GEMM 1 dgrad tail scatter-added into d(hidden) (leak 2)", "transformers #48205"},
	{NoMaskDownDgrad, "no-mask-down-dgrad", "GEMM 1 output mask missing: activation backward of GEMM 2's unwritten dgrad tail reaches the bias gradient (leak 3)", "transformers #48205; maxtext #3699"},
	{EmptyExpertWgrad, "empty-expert-wgrad", "weight gradient of experts with no rows never written", "tgale96/grouped_gemm #36; MSLK #158; pytorch #172439"},
	{HistogramSentinel, "histogram-sentinel", "histogram counts the sentinel bin into the last expert", "torch.histc top-bin clamp"},
	{ExclusiveOffsets, "exclusive-offsets", "exclusive instead of inclusive offsets (off by one expert)", "off-by-one in offsets"},
	{SentinelWrap, "sentinel-wrap", "sentinel −1 wraps to the last expert's weights", "vLLM PR #46408; sglang #40498"},
	{CombineInDtype, "combine-in-dtype", "K-slot combine accumulated in the dtype instead of fp32", "docs/path.md step 9: the combine accumulates in fp32"},
	{AccumInDtype, "accum-in-dtype", "GEMM accumulation in the dtype instead of fp32", "docs/path.md steps 5 and 7: GEMMs accumulate in fp32"},
	{GateUpSwapped, "gate-up-swapped", "gate and up halves swapped in the activation", "layout confusion (concatenated vs interleaved)"},
	{EPNoRankOffset, "ep-no-rank-offset", "global→local id map ignores the rank offset", "flashinfer #3547"},
	{LastTileDropped, "last-tile-dropped", "last partial row tile of each expert not computed", "vLLM PR #49087"},
	{TailStaleUnmasked, "tail-stale-unmasked", "GEMMs write stale values into the sentinel tail and nothing masks them", "pytorch #193633; recycled memory"},
	{NondeterministicSum, "nondeterministic-sum", "slot summation order changes run to run", "atomics in combine / scatter-add"},
	{NeighbourWeights, "neighbour-weights", "one expert uses its neighbour's weights", "wrong per-group pointer"},
	{ZeroTokenRow, "zero-token-row", "one token's output row left at zero", "dropped store"},
	{Crash, "crash", "device fault (illegal address) on every case", "DeepGEMM #34/#38; vLLM #39244"},
	{StaleEmptyWgrad, "stale-empty-wgrad", "weight gradients of experts empty now keep the previous run's values (a persistent buffer)", "state carried between runs (issue 12: held-out fault)"},
}

func (f Fault) String() string {
	for _, fi := range catalogTable {
		if fi.Fault == f {
			return fi.Name
		}
	}
	return fmt.Sprintf("fault(%d)", uint8(f))
}

// Info returns the catalog entry of f.
func (f Fault) Info() (Info, bool) {
	for _, fi := range catalogTable {
		if fi.Fault == f {
			return fi, true
		}
	}
	return Info{}, false
}

// Parse parses a fault by its catalog name.
func Parse(s string) (Fault, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, fi := range catalogTable {
		if fi.Name == s {
			return fi.Fault, nil
		}
	}
	names := make([]string, len(catalogTable))
	for i, fi := range catalogTable {
		names[i] = fi.Name
	}
	return 0, fmt.Errorf("unknown fault %q (known: %s)", s, strings.Join(names, ", "))
}

// Set is a set of faults; the zero value is empty.
type Set uint64

// Of builds a set.
func Of(fs ...Fault) Set {
	var s Set
	for _, f := range fs {
		s |= 1 << f
	}
	return s
}

// Has reports whether f is in the set.
func (s Set) Has(f Fault) bool { return s&(1<<f) != 0 }

// Empty reports whether no fault is set.
func (s Set) Empty() bool { return s == 0 }

// List returns the faults in the set in ascending order.
func (s Set) List() []Fault {
	out := make([]Fault, 0, bits.OnesCount64(uint64(s)))
	for f := Fault(1); f < numFaults; f++ {
		if s.Has(f) {
			out = append(out, f)
		}
	}
	return out
}

func (s Set) String() string {
	if s == 0 {
		return "none"
	}
	var n []string
	for _, f := range s.List() {
		n = append(n, f.String())
	}
	sort.Strings(n)
	return strings.Join(n, ",")
}

// ParseSet parses a comma-separated list of fault names ("" or "none" is empty).
func ParseSet(s string) (Set, error) {
	var set Set
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return 0, nil
	}
	for _, p := range strings.Split(s, ",") {
		f, err := Parse(p)
		if err != nil {
			return 0, err
		}
		set |= Of(f)
	}
	return set, nil
}

// Catalog returns every fault with its documentation, in a stable order (a fresh copy: the table itself cannot be changed from outside).
func Catalog() []Info { return append([]Info(nil), catalogTable...) }

// Unknown returns the bits of s that name no fault of Catalog() (without copying the table).
func (s Set) Unknown() Set {
	var known Set
	for _, fi := range catalogTable {
		known |= Of(fi.Fault)
	}
	return s &^ known
}
