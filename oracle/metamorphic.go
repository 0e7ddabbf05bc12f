package oracle

import (
	"fmt"
	"math"

	"github.com/moecheck/moecheck/contract"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/par"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// The comparisons of metamorphic properties: two or more runs of related cases whose results
// must agree bitwise, as values, or within a bound derived from the enclosures. They live
// here so that every judgement — its rule, its bound, its Failure — is the oracle's.

// CompareValues reports the elements of tensor t in which two results of case c differ as
// values: +0 and −0 are equal, and so are all NaNs (see CompareBitwise for why NaN payloads
// may legitimately differ). Elements whose enclosure in c is unconstrained (they may
// overflow) are not compared. what names the comparison in the failure's detail.
func CompareValues(c *moe.Case, t moe.Tensor, a, b *gpu.Result, what string) ([]Failure, error) {
	en, err := Enclose(c)
	if err != nil {
		return nil, err
	}
	p, err := c.Plan()
	if err != nil {
		return nil, err
	}
	x, y := a.Tensor(t), b.Tensor(t)
	_, rad, _ := en.Bounds(t)
	if len(x) != len(y) || len(x) != len(rad) {
		return []Failure{{Check: CheckShape, Tensor: t, Count: 1, Detail: fmt.Sprintf("%s: lengths %d and %d, want %d", what, len(x), len(y), len(rad))}}, nil
	}
	bad, first := 0, -1
	for i := range x {
		if math.IsNaN(rad[i]) { // unconstrained (overflow): nothing to compare
			continue
		}
		if x[i] != y[i] && !(x[i] != x[i] && y[i] != y[i]) {
			if first < 0 {
				first = i
			}
			bad++
		}
	}
	if bad == 0 {
		return nil, nil
	}
	return []Failure{{Check: CheckBitwise, Tensor: t, Count: bad, Worst: Locate(c, p, t, first),
		Got: float64(x[first]), Want: float64(y[first]), Ratio: math.Inf(1), Detail: what}}, nil
}

// CompareSplitSum judges an expert-parallel split: the unsplit layer's result whole and the
// W rank cases' results ranks[r] (of cases rankCases[r]) must satisfy Σ_r y_r ≈ y,
// Σ_r dX_r ≈ dX and Σ_r d_rw_r ≈ d_rw (each slot is owned by exactly one rank).
//
// Bound, per element: the float64 reference f satisfies Σ_r f_r = f exactly (up to its own
// float64 evaluation, ≤ 1e-12 of the magnitude pass), and each backend value lies within
// |c − f| + r of f, where (c, r) is the enclosure; so
// |Σ_r y_r − y| ≤ Σ_r (|c_r − f_r| + r_r) + (|c − f| + r) + 1e-12·(M + 1).
// Elements where some side is unconstrained (may overflow) are not compared.
func CompareSplitSum(unsplit *moe.Case, whole *gpu.Result, rankCases []*moe.Case, ranks []*gpu.Result) ([]Failure, error) {
	return CompareSplitSumUnder(contract.Exact(), unsplit, whole, rankCases, ranks)
}

// CompareSplitSumUnder is CompareSplitSum with every enclosure derived under contract ct, and
// it also judges the weight gradients: rank r's dW1, dW2 (and dB1, dB2) are the slice of the
// unsplit ones for its experts, which own the same rows in the same order. The weight
// gradients bitwise where ct promises bitwise reruns and batch invariance (the bias gradients
// never: their index-add may run in any, batch-dependent, order) (a rank's expert sees exactly the rows the
// unsplit expert sees, so a path whose arithmetic does not depend on the other experts' rows
// computes the same bits; +0 and −0 differ, NaNs are equal); otherwise within the derived bound
// |g_r − g| ≤ (|c_r − f| + r_r) + (|c − f| + r) + 1e-12·(M + 1), the same derivation with one
// term per side.
func CompareSplitSumUnder(ct contract.Contract, unsplit *moe.Case, whole *gpu.Result, rankCases []*moe.Case, ranks []*gpu.Result) ([]Failure, error) {
	return compareSplitSum(ct, unsplit, whole, rankCases, ranks, &splitScratch{})
}

// splitScratch is CompareSplitSumUnder's scratch memory: the unsplit side's arena, the
// ranks' arena and the reductions' workspace.
type splitScratch struct {
	u, r arena
	ws   workspace
}

// maxKeptSplit is the most float64 elements of scratch a Checker keeps from one split
// comparison to the next (8 MiB per arena): the small cases of a random run reuse it, a
// large case's is dropped after its comparison.
const maxKeptSplit = 1 << 20

// trim drops each arena whose slabs hold more than maxKeptSplit elements, and the
// workspace if it does.
func (s *splitScratch) trim() {
	size := func(a *arena) int {
		n := 0
		for _, sl := range a.slabs {
			n += len(sl)
		}
		return n
	}
	for _, a := range []*arena{&s.u, &s.r} {
		if size(a) > maxKeptSplit {
			*a = arena{}
		}
	}
	n := 0
	for _, b := range s.ws.bufs {
		n += cap(b)
	}
	if n > maxKeptSplit {
		s.ws = workspace{}
	}
}

// CompareSplitSumUnder is the package-level CompareSplitSumUnder with this Checker's
// scratch memory (kept between calls for small cases: a fresh comparison's first slabs were
// most of a small case's cost). Same results.
func (k *Checker) CompareSplitSumUnder(ct contract.Contract, unsplit *moe.Case, whole *gpu.Result, rankCases []*moe.Case, ranks []*gpu.Result) ([]Failure, error) {
	k.split.u.reset()
	k.split.r.reset()
	defer k.split.trim()
	return compareSplitSum(ct, unsplit, whole, rankCases, ranks, &k.split)
}

func compareSplitSum(ct contract.Contract, unsplit *moe.Case, whole *gpu.Result, rankCases []*moe.Case, ranks []*gpu.Result, sc *splitScratch) ([]Failure, error) {
	if len(rankCases) != len(ranks) {
		return nil, fmt.Errorf("oracle: split sum: %d rank cases but %d results", len(rankCases), len(ranks))
	}
	// The W+1 sides are derived one after the other in one arena, and only what the
	// comparisons below read is kept of each (issue 14: the enclosures of the W+1 cases
	// were the largest allocation of a property run): for y, dX and d_rw the bound
	// accumulated over the sides in the order the judgement sums them (the unsplit side's
	// distance plus the float64 slack, then each rank's in rank order: the same float64
	// operations as summing per element); for the weight gradients, each side's distance
	// vectors, and only where they are judged within the bound (not bitwise), which is
	// also the only case in which their enclosures are derived.
	//
	// The bias gradients are never compared bitwise: every contract lets their index-add run
	// in any order (contract.Sum's zero value), and an order that depends on the whole batch
	// is legal — the CUDA path splits it into S/(E·1024) partial sums, so a rank (fewer
	// experts) sums its rows in other groups than the unsplit layer (found on the H200: fp32
	// dB1 one ulp apart at T=256, K=8, world 2).
	bitwise := ct.Promises.Deterministic && ct.Promises.BatchInvariant
	bitwiseFor := func(t moe.Tensor) bool { return bitwise && t != moe.TensorDB1 && t != moe.TensorDB2 }
	sumTensors := []moe.Tensor{moe.TensorY, moe.TensorDX, moe.TensorDRW}
	var wgTensors []moe.Tensor
	var need wgradNeed // the weight or bias gradients judged within the bound: their enclosures are needed
	for _, t := range Outputs(unsplit) {
		switch t {
		case moe.TensorDW1, moe.TensorDW2:
			wgTensors = append(wgTensors, t)
			need.w = need.w || !bitwiseFor(t)
		case moe.TensorDB1, moe.TensorDB2:
			wgTensors = append(wgTensors, t)
			need.b = need.b || !bitwiseFor(t)
		}
	}
	type side struct {
		got    *gpu.Result
		refLen map[moe.Tensor]int       // length of each tensor of the side's reference
		dist   map[moe.Tensor][]float64 // weight gradients: |c − f| + r per element (not bitwise)
	}
	all := append([]*moe.Case{unsplit}, rankCases...)
	res := append([]*gpu.Result{whole}, ranks...)
	sides := make([]side, len(all))
	bounds := make(map[moe.Tensor][]float64, len(sumTensors))
	// The float64 references of the W+1 sides and the unsplit side's magnitudes (the float64
	// slack reads those only), in one pass: a rank's rows are computed once, with the unsplit
	// layer's (reference.RunSplit: bitwise each case's own Run). The weight gradients only
	// where they are judged within the bound (need.w): a bitwise comparison reads no
	// reference. RunSplit validates every case (moe.Limits{}, as the enclosures below would):
	// the enclosures take them as validated.
	refs, err := reference.RunSplit(unsplit, rankCases, reference.Options{NoWeightGrads: !need.w})
	if err != nil {
		return nil, fmt.Errorf("oracle: split sum: %w", err)
	}
	umag := refs.Magnitude
	// The unsplit side's enclosure stays in its own arena while the ranks' are derived (in
	// turn in the other one): every row a rank shares with the unsplit layer is copied from it
	// (rankEnclosureValid).
	var uen *Enclosure
	uar, ar, ws := &sc.u, &sc.r, &sc.ws
	for k, cc := range all {
		var en *Enclosure
		var err error
		ref := refs.Whole
		if k == 0 {
			en, err = encloseValid(cc, false, ct, uar, ws, need, par.New(0, 0), nil)
			uen = en
		} else {
			ar.reset()
			en, err = rankEnclosureValid(uen, unsplit, cc, ct, ar, ws, need, refs.Split[k-1])
			ref = refs.Ranks[k-1]
		}
		if err != nil {
			return nil, err
		}
		// dist is the largest |value − f| the enclosure admits; NaN when unconstrained.
		// (per tensor: its centers, radii and reference, looked up once, then per element)
		dists := func(t moe.Tensor) func(i int) float64 {
			c, r, _ := en.Bounds(t)
			f := ref.Tensor(t)
			return func(i int) float64 { return math.Abs(c[i]-f[i]) + r[i] }
		}
		s := side{got: res[k], refLen: map[moe.Tensor]int{}, dist: map[moe.Tensor][]float64{}}
		for _, t := range append(sumTensors, wgTensors...) {
			s.refLen[t] = len(ref.Tensor(t))
			if (t == moe.TensorDW1 || t == moe.TensorDW2) && !need.w {
				s.refLen[t] = cc.Len(t) // not computed (compared bitwise): the length Run's has
			}
		}
		for _, t := range sumTensors {
			if k == 0 {
				b := make([]float64, len(ref.Tensor(t)))
				dist, mag := dists(t), umag.Tensor(t)
				for i := range b {
					b[i] = dist(i) + 1e-12*(mag[i]+1)
				}
				bounds[t] = b
				continue
			}
			b := bounds[t]
			if c, _, _ := en.Bounds(t); len(c) < len(b) || len(ref.Tensor(t)) < len(b) {
				return nil, fmt.Errorf("oracle: split sum: rank %d's %s has %d elements, the unsplit layer's %d", k-1, t, len(c), len(b))
			}
			dist := dists(t)
			for i := range b {
				b[i] += dist(i)
			}
		}
		for _, t := range wgTensors {
			if !bitwiseFor(t) {
				c, _, _ := en.Bounds(t)
				n := min(len(c), len(ref.Tensor(t)))
				d := make([]float64, n)
				dist := dists(t)
				for i := range d {
					d[i] = dist(i)
				}
				s.dist[t] = d
			}
		}
		sides[k] = s
	}
	p := refs.Whole.Plan // unsplit.Plan(), computed by RunSplit
	var fs []Failure
	for _, t := range sumTensors {
		u := sides[0]
		n := u.refLen[t]
		if len(u.got.Tensor(t)) != n {
			fs = append(fs, Failure{Check: CheckShape, Tensor: t, Count: 1, Detail: "unsplit result has the wrong length"})
			continue
		}
		bad, worst, worstRatio := 0, -1, 0.0
		var worstSum, worstWant, worstBound float64
		// each side's tensor looked up once (a rank's wrong length is found at the first
		// element, as before)
		gs := make([][]float32, len(sides)-1)
		for r, s := range sides[1:] {
			if gs[r] = s.got.Tensor(t); n > 0 && len(gs[r]) != n {
				return []Failure{{Check: CheckShape, Tensor: t, Count: 1, Detail: "rank result has the wrong length"}}, nil
			}
		}
		tb, tw := bounds[t], u.got.Tensor(t)
		for i := 0; i < n; i++ {
			sum, bound := 0.0, tb[i]
			for _, g := range gs {
				sum += float64(g[i])
			}
			want := float64(tw[i])
			if math.IsNaN(bound) { // some side unconstrained (overflow): nothing to compare
				continue
			}
			if d := math.Abs(sum - want); !(d <= bound) {
				bad++
				if q := d / bound; worst < 0 || q > worstRatio || math.IsNaN(d) {
					worst, worstRatio, worstSum, worstWant, worstBound = i, q, sum, want, bound
				}
			}
		}
		if bad > 0 {
			fs = append(fs, Failure{Check: CheckBound, Tensor: t, Count: bad, Worst: Locate(unsplit, p, t, worst),
				Got: worstSum, Want: worstWant, Bound: worstBound, Ratio: worstRatio,
				Detail: fmt.Sprintf("sum over %d ranks vs the unsplit layer", len(ranks))})
		}
	}
	for _, t := range wgTensors {
		u := sides[0]
		full := u.got.Tensor(t)
		if len(full) != u.refLen[t] {
			fs = append(fs, Failure{Check: CheckShape, Tensor: t, Count: 1, Detail: "unsplit result has the wrong length"})
			continue
		}
		for r, s := range sides[1:] {
			g := s.got.Tensor(t)
			n := s.refLen[t]
			if len(g) != n || (r+1)*n > len(full) {
				fs = append(fs, Failure{Check: CheckShape, Tensor: t, Count: 1, Detail: fmt.Sprintf("rank %d result has the wrong length", r)})
				continue
			}
			rp := refs.Ranks[r].Plan // rankCases[r].Plan(), computed by RunSplit
			off := r * n
			var ag agg
			sd, ud, um := s.dist[t], u.dist[t], umag.Tensor(t)
			for i := 0; i < n; i++ {
				got, want := float64(g[i]), float64(full[off+i])
				if bitwiseFor(t) {
					if math.Float32bits(g[i]) != math.Float32bits(full[off+i]) && !(g[i] != g[i] && full[off+i] != full[off+i]) {
						ag.add(Failure{Check: CheckBitwise, Tensor: t, Worst: Locate(rankCases[r], rp, t, i), Got: got, Want: want, Ratio: ratio(got, want, 0)})
					}
					continue
				}
				bound := sd[i] + ud[off+i] + 1e-12*(um[off+i]+1)
				if math.IsNaN(bound) { // some side unconstrained (overflow): nothing to compare
					continue
				}
				if d := math.Abs(got - want); !(d <= bound) {
					ag.add(Failure{Check: CheckBound, Tensor: t, Worst: Locate(rankCases[r], rp, t, i), Got: got, Want: want, Bound: bound, Ratio: d / bound})
				}
			}
			if ag.set {
				ag.f.Detail = fmt.Sprintf("rank %d of %d vs its slice of the unsplit layer (%s)", r, len(ranks), map[bool]string{true: "bitwise", false: "contract " + ct.String() + ", derived bound"}[bitwiseFor(t)])
				fs = append(fs, ag.f)
			}
		}
	}
	return fs, nil
}
