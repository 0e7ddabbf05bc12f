package sim

import "github.com/moecheck/moecheck/moe"

// forward runs docs/path.md steps 4–9.
func (st *state) forward(c moe.Config, f faults) {
	S, H, I, I2, K, d := c.S(), c.H, c.I, 2*c.I, c.K, c.DType
	R := st.R

	// Step 4: gather xs[i] = x[tok(i)] for all rows; mask A zeroes the tail.
	for i := 0; i < S; i++ {
		row := st.xs[i*H : (i+1)*H]
		if i >= R && f.maskA { // mask A (dropped by NoMaskUpDgrad, TailStaleUnmasked, SentinelWrap)
			clear(row)
			continue
		}
		t := int(st.perm[i]) / K
		copy(row, st.x[t*H:(t+1)*H])
	}

	// Step 5: GEMM 1 on the rows route assigned (rows < R; the tail is not written).
	st.gemm(c, f, st.h1, I2, st.xs, H, st.w1t, st.rowF, st.b1)
	if f.maskB { // mask B (dropped by NoMaskDownDgrad, TailStaleUnmasked, SentinelWrap)
		clear(st.h1[R*I2:])
	}

	// Step 6: activation on all rows.
	st.activate(c, f)

	// Step 7: GEMM 2.
	st.gemm(c, f, st.h2, H, st.act, I, st.w2t, st.rowF, st.b2)
	if f.maskC { // mask C (moved to o by MaskAfterWeight; dropped by TailStaleUnmasked, SentinelWrap)
		clear(st.h2[R*H:])
	}

	// Step 8: o = round_d(h2 · rw[slot]) on all rows.
	for i := 0; i < S; i++ {
		w := st.rw[st.perm[i]]
		h2, o := st.h2[i*H:(i+1)*H], st.o[i*H:(i+1)*H]
		for h, v := range h2 {
			o[h] = d.RoundFloat32(v * w)
		}
	}
	if f.maskO { // fault MaskAfterWeight: the tail is masked only after the weight multiply
		clear(st.o[R*H:])
	}

	// Step 9: un-permute and combine, fp32 from +0 in k order.
	for t := 0; t < c.T; t++ {
		y := st.y[t*H : (t+1)*H]
		clear(y)
		for _, k := range st.slotOrder(c, f, t) {
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
	if f.zeroTokenRow && st.zeroTok >= 0 { // fault ZeroTokenRow: that token's store is dropped
		clear(st.y[st.zeroTok*H : (st.zeroTok+1)*H])
	}
}

// slotOrder is the order in which token t's K slots are summed (steps 9 and 18): k = 0..K−1,
// or under fault NondeterministicSum rotated by (run + t) mod K, so consecutive Runs of a
// Backend sum every token in a different order (for K ≥ 2).
func (st *state) slotOrder(c moe.Config, f faults, t int) []int {
	K := c.K
	st.ord = grow(st.ord, K)
	rot := 0
	if f.nondeterministicSum {
		rot = int((st.run + uint64(t)) % uint64(K))
	}
	for j := range st.ord {
		st.ord[j] = (rot + j) % K
	}
	return st.ord
}

// gemm computes out[i] = round_d(fl32(in[i] · W[rows[i]]) + bias[rowG[i]]) for every row i
// with rows[i] ≥ 0 and leaves the other rows unwritten. out rows have n elements, in rows k;
// w holds per expert a k×n matrix (row q is the q-th reduction index). bias is per expert n
// values, or empty.
func (st *state) gemm(c moe.Config, f faults, out []float32, n int, in []float32, k int, w []float32, rows []int32, bias []float32) {
	d := c.DType
	for i := 0; i < len(rows); i++ {
		e := rows[i]
		if e < 0 {
			continue
		}
		o, a, m := out[i*n:(i+1)*n], in[i*k:(i+1)*k], w[int(e)*k*n:(int(e)+1)*k*n]
		clear(o)
		switch {
		case f.accumInDtype: // fault AccumInDtype
			gemvInDtype(d, o, a, 1, m, n, k)
		case i+1 < len(rows) && rows[i+1] == e: // two rows of one expert share the weight loads
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
