package sim

import "github.com/moecheck/moecheck/moe"

// forward runs docs/path.md steps 4–9 (on st.cfg with faults st.f).
func (st *state) forward() {
	c, f := st.cfg, st.f
	S, H, I, I2, K := c.S(), c.H, c.I, 2*c.I, c.K
	R := st.R

	// Step 4: gather xs[i] = x[tok(i)] for all rows; mask A zeroes the tail.
	parFor(st.par, S, H, st, (*state).gatherRows)

	// Step 5: GEMM 1 on the rows route assigned (rows < R; the tail is not written).
	st.gemm(memoGemm1, st.h1, I2, st.xs, H, st.w1t, st.wgen1, st.rowF, st.b1)
	if f.maskB { // mask B (dropped by NoMaskDownDgrad, TailStaleUnmasked, SentinelWrap)
		st.clear(st.h1[R*I2:])
	}

	// Step 6: activation on all rows.
	st.activate()

	// Step 7: GEMM 2.
	st.gemm(memoGemm2, st.h2, H, st.act, I, st.w2t, st.wgen2, st.rowF, st.b2)
	if f.maskC { // mask C (moved to o by MaskAfterWeight; dropped by TailStaleUnmasked, SentinelWrap)
		st.clear(st.h2[R*H:])
	}

	// Step 8: o = round_d(h2 · rw[slot]) on all rows.
	parFor(st.par, S, H, st, (*state).weightRows)
	if f.maskO { // fault MaskAfterWeight: the tail is masked only after the weight multiply
		st.clear(st.o[R*H:])
	}

	// Step 9: un-permute and combine, fp32 from +0 in k order.
	parFor(st.par, c.T, K*H, st, (*state).combineTokens)
	if f.zeroTokenRow && st.zeroTok >= 0 { // fault ZeroTokenRow: that token's store is dropped
		clear(st.y[st.zeroTok*H : (st.zeroTok+1)*H])
	}
}

// gatherRows is step 4 on rows [lo, hi).
func (st *state) gatherRows(lo, hi int) {
	H, K := st.cfg.H, st.cfg.K
	for i := lo; i < hi; i++ {
		row := st.xs[i*H : (i+1)*H]
		if i >= st.R && st.f.maskA { // mask A (dropped by NoMaskUpDgrad, TailStaleUnmasked, SentinelWrap)
			clear(row)
			continue
		}
		t := int(st.perm[i]) / K
		copy(row, st.x[t*H:(t+1)*H])
	}
}

// weightRows is step 8 on rows [lo, hi).
func (st *state) weightRows(lo, hi int) {
	H, d := st.cfg.H, st.cfg.DType
	for i := lo; i < hi; i++ {
		w := st.rw[st.perm[i]]
		h2, o := st.h2[i*H:(i+1)*H], st.o[i*H:(i+1)*H]
		for h, v := range h2 {
			o[h] = v * w
		}
		roundAll(d, o) // round_d(v·w) element by element
	}
}

// combineTokens is step 9 on tokens [lo, hi).
func (st *state) combineTokens(lo, hi int) {
	c, f := st.cfg, st.f
	H, K, d := c.H, c.K, c.DType
	for t := lo; t < hi; t++ {
		y := st.y[t*H : (t+1)*H]
		clear(y)
		rot := st.slotRotation(t)
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
}

// slotRotation gives the order in which token t's K slots are summed (steps 9 and 18): the
// j-th summed slot is k = (rot + j) mod K, with rot 0, or under fault NondeterministicSum
// (run + t) mod K, so consecutive Runs of a Backend sum every token in a different order
// (for K ≥ 2).
func (st *state) slotRotation(t int) int {
	if st.f.nondeterministicSum {
		return int((st.run + uint64(t)) % uint64(st.cfg.K))
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
//
// slot is the GEMM's memo entry (memo.go) and wgen the conversion generation of w: a GEMM
// that reads what the entry's read copies its outputs from there.
func (st *state) gemm(slot int, out []float32, n int, in []float32, k int, w []float32, wgen uint64, rows []int32, bias []float32) {
	st.g = gemmArgs{out: out, n: n, in: in, k: k, w: w, rows: rows, bias: bias}
	head := memoHead{n: n, k: k, s: len(rows), d: st.cfg.DType, f1: st.f.accumInDtype, wgen: wgen, nbias: len(bias)}
	useMemo := !st.memo.off && st.R*n*k >= memoMinWork
	if useMemo {
		if e, ok := st.memo.lookup(slot, head, st.gemmKey); ok {
			p := 0
			writtenRuns(rows, func(a, b int) { p += copy(out[a*n:b*n], e.out[p:]) })
			return
		}
	}
	// second[i]: the loop reaches row i as the second row of a pair (an odd offset in a run
	// of rows with one expert); AccumInDtype forms no pairs.
	st.second = grow(st.second, len(rows))
	off := 0
	for i, e := range rows {
		if e >= 0 && i > 0 && rows[i-1] == e {
			off++
		} else {
			off = 0
		}
		st.second[i] = off%2 == 1 && !st.f.accumInDtype
	}
	parFor(st.par, len(rows), n*k, st, (*state).gemmRange)
	if useMemo {
		nout := 0
		writtenRuns(rows, func(a, b int) { nout += (b - a) * n })
		if e := st.memo.store(slot, head, nout, st.gemmKey); e != nil {
			writtenRuns(rows, func(a, b int) { e.out = append(e.out, out[a*n:b*n]...) })
		}
	}
}

// gemmKey walks the key of the gemm in progress (memo.go): the row→expert map (which rows
// are written, with which weights, and the pairs of the two-row kernel), each row's group
// and the bias where there is a bias, and the input rows the map writes. The scalars and the
// weights' generation are the head's.
func (st *state) gemmKey(k *memoKey) {
	g := &st.g
	k.ints(g.rows)
	if len(g.bias) > 0 {
		k.ints(st.rowG[:len(g.rows)])
		k.floats(g.bias)
	}
	writtenRuns(g.rows, func(a, b int) { k.floats(g.in[a*g.k : b*g.k]) })
}

// gemmArgs are the operands of the gemm in progress (read by its ranges).
type gemmArgs struct {
	out, in, w, bias []float32
	n, k             int
	rows             []int32
}

// gemmRange is gemm on rows [lo, hi), moved so that no pair is split.
func (st *state) gemmRange(lo, hi int) {
	if st.second[lo] { // the range before this one ends with that pair
		lo++
	}
	if hi < len(st.second) && st.second[hi] {
		hi++
	}
	g := &st.g
	st.gemmRows(g.out, g.n, g.in, g.k, g.w, g.rows, g.bias, lo, hi)
}

// gemmRows is gemm on rows [lo, hi).
func (st *state) gemmRows(out []float32, n int, in []float32, k int, w []float32, rows []int32, bias []float32, lo, hi int) {
	d, f := st.cfg.DType, st.f
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

// activate is step 6 on all rows: rows [0, R) from the memo where its entry read these h1 rows
// (memo.go), the others computed (activateRows).
//
// Under mask B the tail rows of h1 are +0, and an activation value is a function of the bits
// of (gate, up) alone (activateRows): every tail row of act is then tail row R's, computed
// once and copied (the tail is most rows of a rank of a large expert-parallel world).
func (st *state) activate() {
	c, R := st.cfg, st.R
	S, I := c.S(), c.I
	hi := S // rows computed; the rest copy row R
	if st.f.maskB && R+1 < S {
		hi = R + 1
	}
	defer func() {
		if hi < S {
			parFor(st.par, S-hi, I, rowsFrom{st, hi}, rowsFrom.copyActRowR)
		}
	}()
	head := memoHead{n: I, k: 2 * I, s: R, d: c.DType, act: c.Act, f1: st.f.gateUpSwapped}
	useMemo := !st.memo.off && R*I >= memoMinWork
	if useMemo {
		if e, ok := st.memo.lookup(memoAct, head, st.activateKey); ok {
			copy(st.act[:R*I], e.out)
			parFor(st.par, hi-R, 4*I, rowsFrom{st, R}, rowsFrom.activate)
			return
		}
	}
	parFor(st.par, hi, 4*I, st, (*state).activateRows)
	if useMemo {
		if e := st.memo.store(memoAct, head, R*I, st.activateKey); e != nil {
			e.out = append(e.out, st.act[:R*I]...)
		}
	}
}

// activateKey walks the activation's key: h1's rows [0, R) (the head holds R, I, the
// activation, the dtype and GateUpSwapped).
func (st *state) activateKey(k *memoKey) { k.floats(st.h1[:st.R*2*st.cfg.I]) }

// rowsFrom runs a stage's row ranges shifted by lo (the rows from lo on).
type rowsFrom struct {
	st *state
	lo int
}

func (r rowsFrom) activate(lo, hi int) { r.st.activateRows(r.lo+lo, r.lo+hi) }

// copyActRowR copies act's row R (a tail row under mask B) into the shifted rows.
func (r rowsFrom) copyActRowR(lo, hi int) {
	st := r.st
	I := st.cfg.I
	src := st.act[st.R*I : (st.R+1)*I]
	for i := r.lo + lo; i < r.lo+hi; i++ {
		copy(st.act[i*I:(i+1)*I], src)
	}
}

func (r rowsFrom) activateBackward(lo, hi int) { r.st.activateBackwardRows(r.lo+lo, r.lo+hi) }
