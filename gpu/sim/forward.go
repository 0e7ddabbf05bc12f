package sim

import "github.com/moecheck/moecheck/moe"

// forward runs docs/path.md steps 4–9.
func (st *state) forward(c moe.Config, f faults) {
	S, H, I, I2, K, d := c.S(), c.H, c.I, 2*c.I, c.K, c.DType
	R := st.R

	// Step 4: gather xs[i] = x[tok(i)] for all rows; mask A zeroes the tail.
	parFor(st.par, S, H, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := st.xs[i*H : (i+1)*H]
			if i >= R && f.maskA { // mask A (dropped by NoMaskUpDgrad, TailStaleUnmasked, SentinelWrap)
				clear(row)
				continue
			}
			t := int(st.perm[i]) / K
			copy(row, st.x[t*H:(t+1)*H])
		}
	})

	// Step 5: GEMM 1 on the rows route assigned (rows < R; the tail is not written).
	st.gemm(c, f, st.h1, I2, st.xs, H, st.w1t, st.rowF, st.b1)
	if f.maskB { // mask B (dropped by NoMaskDownDgrad, TailStaleUnmasked, SentinelWrap)
		st.clear(st.h1[R*I2:])
	}

	// Step 6: activation on all rows.
	st.activate(c, f)

	// Step 7: GEMM 2.
	st.gemm(c, f, st.h2, H, st.act, I, st.w2t, st.rowF, st.b2)
	if f.maskC { // mask C (moved to o by MaskAfterWeight; dropped by TailStaleUnmasked, SentinelWrap)
		st.clear(st.h2[R*H:])
	}

	// Step 8: o = round_d(h2 · rw[slot]) on all rows.
	parFor(st.par, S, H, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			w := st.rw[st.perm[i]]
			h2, o := st.h2[i*H:(i+1)*H], st.o[i*H:(i+1)*H]
			for h, v := range h2 {
				o[h] = d.RoundFloat32(v * w)
			}
		}
	})
	if f.maskO { // fault MaskAfterWeight: the tail is masked only after the weight multiply
		st.clear(st.o[R*H:])
	}

	// Step 9: un-permute and combine, fp32 from +0 in k order.
	parFor(st.par, c.T, K*H, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			y := st.y[t*H : (t+1)*H]
			clear(y)
			rot := st.slotRotation(c, f, t)
			for j := 0; j < K; j++ {
				k := (rot + j) % K
				o := st.o[int(st.inv[t*K+k])*H:]
				o = o[:len(y)]
				if f.combineInDtype { // fault CombineInDtype: the accumulator is a dtype value
					for h := range y {
						y[h] = d.RoundFloat32(y[h] + o[h])
					}
				} else {
					for h := range y {
						y[h] += o[h]
					}
				}
			}
			roundAll(d, y)
		}
	})
	if f.zeroTokenRow && st.zeroTok >= 0 { // fault ZeroTokenRow: that token's store is dropped
		clear(st.y[st.zeroTok*H : (st.zeroTok+1)*H])
	}
}

// slotRotation gives the order in which token t's K slots are summed (steps 9 and 18): the
// j-th summed slot is k = (rot + j) mod K, with rot 0, or under fault NondeterministicSum
// (run + t) mod K, so consecutive Runs of a Backend sum every token in a different order
// (for K ≥ 2).
func (st *state) slotRotation(c moe.Config, f faults, t int) int {
	if f.nondeterministicSum {
		return int((st.run + uint64(t)) % uint64(c.K))
	}
	return 0
}

// gemm computes out[i] = round_d(fl32(in[i] · W[rows[i]]) + bias[rowG[i]]) for every row i
// with rows[i] ≥ 0 and leaves the other rows unwritten. out rows have n elements, in rows k;
// w holds per expert a k×n matrix (row q is the q-th reduction index). bias is per expert n
// values, or empty.
//
// Rows are independent outputs: they are split over st.par goroutines in ranges of whole
// rows. The ranges keep the single-goroutine loop's pairs (gemv2 on rows i, i+1 of one
// expert): gemv2 gives gemv's values, but where two NaNs meet, x86 propagates the first
// operand's, so a NaN's sign bit may depend on which kernel formed it.
func (st *state) gemm(c moe.Config, f faults, out []float32, n int, in []float32, k int, w []float32, rows []int32, bias []float32) {
	if f.accumInDtype { // one row per step, no pairs
		parFor(st.par, len(rows), n*k, func(lo, hi int) {
			st.gemmRows(c, f, out, n, in, k, w, rows, bias, lo, hi)
		})
		return
	}
	// second[i]: the loop reaches row i as the second row of a pair (an odd offset in a run
	// of rows with one expert).
	st.second = grow(st.second, len(rows))
	off := 0
	for i, e := range rows {
		if e >= 0 && i > 0 && rows[i-1] == e {
			off++
		} else {
			off = 0
		}
		st.second[i] = off%2 == 1
	}
	parFor(st.par, len(rows), n*k, func(lo, hi int) {
		if st.second[lo] { // the range before this one ends with that pair
			lo++
		}
		if hi < len(rows) && st.second[hi] {
			hi++
		}
		st.gemmRows(c, f, out, n, in, k, w, rows, bias, lo, hi)
	})
}

// gemmRows is gemm on rows [lo, hi).
func (st *state) gemmRows(c moe.Config, f faults, out []float32, n int, in []float32, k int, w []float32, rows []int32, bias []float32, lo, hi int) {
	d := c.DType
	for i := lo; i < hi; i++ {
		e := rows[i]
		if e < 0 {
			continue
		}
		o, a, m := out[i*n:(i+1)*n], in[i*k:(i+1)*k], w[int(e)*k*n:(int(e)+1)*k*n]
		clear(o)
		switch {
		case f.accumInDtype: // fault AccumInDtype
			gemvInDtype(d, o, a, 1, m, n, k)
		case i+1 < hi && rows[i+1] == e: // two rows of one expert share the weight loads
			o1, a1 := out[(i+1)*n:(i+2)*n], in[(i+1)*k:(i+2)*k]
			clear(o1)
			gemv2(o, o1, a, a1, 1, m, n, k)
			st.finishRow(d, o, bias, i)
			i++
			o = o1
		default:
			gemv(o, a, 1, m, n, k)
		}
		st.finishRow(d, o, bias, i)
	}
}

// finishRow adds row i's group bias (when there is one) to the fp32 accumulator row o and
// stores it in the dtype.
func (st *state) finishRow(d moe.DType, o, bias []float32, i int) {
	if len(bias) > 0 {
		g, n := int(st.rowG[i]), len(o)
		b := bias[g*n : (g+1)*n]
		for j := range o {
			o[j] += b[j]
		}
	}
	roundAll(d, o)
}
