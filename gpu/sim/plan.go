package sim

import (
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
)

// route runs the routing stage (docs/path.md steps 1–3) with the routing faults, and
// assigns each sorted row the expert whose weights each GEMM uses for it:
//
//	rowF[i]  forward GEMMs 1 and 2 (−1: row not written)
//	rowW[i]  backward dgrads (−1: row not written)
//	rowG[i]  the row's group (its bias in the forward GEMMs), −1 outside every group
//
// Without faults all three are the row's expert for i < R and −1 in the sentinel tail.
func (st *state) route(c *moe.Case, f faults) {
	S, E, K := c.S(), c.E, c.K
	st.ids = grow(st.ids, S)
	st.rw = grow(st.rw, S)
	// Step 1: the EP map, when the case carries the router's global routing.
	if g := c.Global; g != nil {
		lo := int64(c.EP.Rank) * int64(E)
		if f.epNoRankOffset { // fault EPNoRankOffset: rank r maps as if it were rank 0
			lo = 0
		}
		for s, id := range g.IDs {
			w := g.Weights[s]
			if id >= lo && id < lo+int64(E) {
				st.ids[s] = int32(id - lo)
			} else {
				st.ids[s] = int32(E)
				if !g.Options.KeepSentinelWeights {
					w = 0
				}
			}
			st.rw[s] = float32(w)
		}
	} else {
		copy(st.ids, c.Routing.IDs)
		for s, w := range c.Routing.Weights {
			st.rw[s] = float32(w)
		}
	}
	if f.clampSentinel { // fault ClampSentinel: sentinel ids clamped to E−1 before the sort
		for s, id := range st.ids {
			if int(id) == E {
				st.ids[s] = int32(E - 1)
			}
		}
	}
	// ZeroTokenRow's target: the first token with a non-sentinel slot, as the sort sees the ids.
	st.zeroTok = -1
	for s, id := range st.ids {
		if int(id) < E {
			st.zeroTok = s / K
			break
		}
	}

	// Step 2: stable counting sort of the ids (sentinel E last).
	st.hist = grow(st.hist, E+1)
	clear(st.hist)
	for _, id := range st.ids {
		st.hist[id]++
	}
	st.perm = grow(st.perm, S)
	st.inv = grow(st.inv, S)
	st.sorted = grow(st.sorted, S)
	st.next = grow(st.next, E+1)
	acc := 0
	for e := 0; e <= E; e++ {
		st.next[e] = acc
		acc += st.hist[e]
	}
	for s, id := range st.ids {
		i := st.next[id]
		st.next[id]++
		st.perm[i], st.inv[s], st.sorted[i] = int32(s), int32(i), id
	}

	// Step 3: counts over 0..E−1 and int32 offsets.
	st.offsets = grow(st.offsets, E)
	sum := int32(0)
	for e := 0; e < E; e++ {
		n := int32(st.hist[e])
		if e == E-1 && f.histogramSentinel { // fault HistogramSentinel: sentinel bin counted into E−1
			n += int32(st.hist[E])
		}
		if f.exclusiveOffsets { // fault ExclusiveOffsets: offsets[e] = Σ counts[<e]
			st.offsets[e] = sum
			sum += n
		} else {
			sum += n
			st.offsets[e] = sum
		}
	}
	st.R = int(st.offsets[E-1])

	// Row → expert for each GEMM. Faults TailStaleUnmasked and SentinelWrap (the sentinel −1
	// wrapping to E−1) extend GEMM group E−1 over the tail, so the tail rows run as expert
	// E−1 in GEMM 1, GEMM 2 and both dgrads (SentinelWrap in the wgrads too: wend).
	st.rowF = grow(st.rowF, S)
	st.rowW = grow(st.rowW, S)
	st.rowG = grow(st.rowG, S)
	for i := range st.rowF {
		st.rowF[i], st.rowW[i], st.rowG[i] = -1, -1, -1
	}
	last := -1 // the last GEMM group with rows
	for e := 0; e < E; e++ {
		lo, hi := st.begin(e), st.gend(e, f)
		for i := lo; i < hi; i++ {
			st.rowF[i], st.rowW[i], st.rowG[i] = int32(e), int32(e), int32(e)
		}
		if hi > lo {
			last = e
		}
		if f.lastTileDropped && (hi-lo)%fault.TileRows != 0 {
			// fault LastTileDropped: the forward GEMMs skip the group's last partial tile.
			for i := lo + (hi-lo)/fault.TileRows*fault.TileRows; i < hi; i++ {
				st.rowF[i] = -1
			}
		}
	}
	if f.neighbourWeights && last >= 0 {
		// fault NeighbourWeights: the last group with rows reads expert (e−1 mod E)'s weights.
		nb := int32((last - 1 + E) % E)
		for i := st.begin(last); i < st.gend(last, f); i++ {
			if st.rowF[i] >= 0 {
				st.rowF[i] = nb
			}
			st.rowW[i] = nb
		}
	}
}

// gend is one past the last row of GEMM group e: Offsets[e], or S for group E−1 under
// TailStaleUnmasked and SentinelWrap.
func (st *state) gend(e int, f faults) int {
	if e == len(st.offsets)-1 && (f.tailStaleUnmasked || f.sentinelWrap) {
		return len(st.perm)
	}
	return st.end(e)
}

// wend is one past the last row of expert e's wgrad: Offsets[e], or S for E−1 under
// SentinelWrap (the wrapped sentinel rows accumulate into W[−1] = W[E−1]'s gradient).
func (st *state) wend(e int, f faults) int {
	if e == len(st.offsets)-1 && f.sentinelWrap {
		return len(st.perm)
	}
	return st.end(e)
}

// begin is the first sorted row of group e (Offsets[e−1], 0 for e = 0).
func (st *state) begin(e int) int {
	if e == 0 {
		return 0
	}
	return int(st.offsets[e-1])
}

// end is one past the last sorted row of group e (Offsets[e]).
func (st *state) end(e int) int { return int(st.offsets[e]) }
