package sim

// backward runs docs/path.md steps 10–18 (on st.cfg with faults st.f).
func (st *state) backward() {
	c, f := st.cfg, st.f
	S, H, I, I2, K := c.S(), c.H, c.I, 2*c.I, c.K
	R := st.R

	// Step 10: gather d_o[i] = dY[tok(i)] for all rows.
	parFor(st.par, S, H, st, (*state).gatherDORows)

	// Step 11: d_rw[i] = round_d(Σ_h d_o·h2), all rows (leak 1 reads h2's tail here).
	parFor(st.par, S, H, st, (*state).drwRows)

	// Step 12: d_h2 = round_d(d_o · rw[slot]) for i < R; 0 in the tail (backward of mask C,
	// or of MaskAfterWeight's mask on o: d(h2·rw) = 0 there). With the masks dropped
	// (TailStaleUnmasked, SentinelWrap) the tail is computed like the other rows.
	parFor(st.par, S, H, st, (*state).dh2Rows)

	// Step 13: GEMM 2 dgrad, d_act = d_h2 · W2[e] (W2 standard: H rows of I); tail unwritten.
	st.gemm(memoDgrad2, st.dact, I, st.dh2, H, st.w2, st.wgen2, st.rowW, nil)

	// Step 14: GEMM 2 wgrad dW2[e,h,:] = Σ_{i ∈ rows(e)} d_h2[i,h]·act[i,:]; bias by index-add.
	st.wgrad(memoWgrad2, st.dw2, H, I, st.dh2, st.act, &st.prevDW2)
	if c.Bias {
		st.indexAdd(st.db2, H, st.dh2)
	}

	// Step 15: activation backward on all rows; mask B's backward zeroes the tail (computing
	// the tail first would give the same zeros, so only rows < R are computed then).
	if f.maskB {
		st.activateBackward(R)
		st.clear(st.dh1[R*I2:])
	} else { // NoMaskDownDgrad: the unwritten d_act tail goes on (leak 3)
		st.activateBackward(S)
	}

	// Step 16: GEMM 1 dgrad, d_xs = d_h1 · W1[e] (W1 standard: 2I rows of H); mask A's backward.
	st.gemm(memoDgrad1, st.dxs, H, st.dh1, I2, st.w1, st.wgen1, st.rowW, nil)
	if f.maskA {
		st.clear(st.dxs[R*H:])
	} // else NoMaskUpDgrad: the unwritten d_xs tail is scatter-added below (leak 2)

	// Step 17: GEMM 1 wgrad dW1[e,j,:] = Σ_{i ∈ rows(e)} d_h1[i,j]·xs[i,:]; bias by index-add.
	st.wgrad(memoWgrad1, st.dw1, I2, H, st.dh1, st.xs, &st.prevDW1)
	if c.Bias {
		st.indexAdd(st.db1, I2, st.dh1)
	}

	// Step 18: scatter-add dX[t] = round_d(Σ_k d_xs[Inv[t·K+k]]), fp32 from +0 in k order.
	parFor(st.par, c.T, K*H, st, (*state).scatterTokens)
}

// gatherDORows is step 10 on rows [lo, hi).
func (st *state) gatherDORows(lo, hi int) {
	H, K := st.cfg.H, st.cfg.K
	for i := lo; i < hi; i++ {
		t := int(st.perm[i]) / K
		copy(st.do[i*H:(i+1)*H], st.dy[t*H:(t+1)*H])
	}
}

// drwRows is step 11 on rows [lo, hi).
func (st *state) drwRows(lo, hi int) {
	H, d := st.cfg.H, st.cfg.DType
	for i := lo; i < hi; i++ {
		do, h2 := st.do[i*H:(i+1)*H], st.h2[i*H:(i+1)*H]
		var acc float32
		for h, v := range do {
			acc += float32(v * h2[h])
		}
		st.drw[i] = d.RoundFloat32(acc)
	}
}

// dh2Rows is step 12 on rows [lo, hi).
func (st *state) dh2Rows(lo, hi int) {
	H, d, f := st.cfg.H, st.cfg.DType, st.f
	for i := lo; i < hi; i++ {
		dh := st.dh2[i*H : (i+1)*H]
		if i >= st.R && (f.maskC || f.maskO) {
			clear(dh)
			continue
		}
		w := st.rw[st.perm[i]]
		for h, v := range st.do[i*H : (i+1)*H] {
			dh[h] = v * w
		}
		roundAll(d, dh) // round_d(v·w) element by element
	}
}

// scatterTokens is step 18 on tokens [lo, hi).
func (st *state) scatterTokens(lo, hi int) {
	H, K, d := st.cfg.H, st.cfg.K, st.cfg.DType
	for t := lo; t < hi; t++ {
		dx := st.dx[t*H : (t+1)*H]
		clear(dx)
		rot := st.slotRotation(t)
		for j := 0; j < K; j++ {
			src := st.dxs[int(st.inv[t*K+(rot+j)%K])*H:]
			src = src[:len(dx)]
			for h := range dx {
				dx[h] += src[h]
			}
		}
		roundAll(d, dx)
	}
}

// wgrad computes dW[e] (m×n per expert, standard layout) = Σ_{i ∈ rows(e)} dout[i,:]ᵀ·in[i,:]
// (dout rows have m elements, in rows n), in fp32 over the wgrad group's rows in order, one
// rounding.
// An expert with no rows gets exact zeros: the kernel writes them. prev is the persistent
// buffer of fault StaleEmptyWgrad (the previous faulty run's dW and its per-expert size).
//
// The rows of dW (E·m, each an independent output) are split over st.par goroutines by pairs
// of rows (2p, 2p+1), the pairs the single-goroutine loop forms (see gemm on NaN signs).
//
// slot is its memo entry (memo.go): where the entry read what this wgrad reads, the blocks of
// the experts with rows are copied from there, and only the empty experts' are written.
func (st *state) wgrad(slot int, dw []float32, m, n int, dout, in []float32, prev *staleWgrad) {
	c, f := st.cfg, st.f
	if f.staleEmptyWgrad {
		defer prev.keep(dw, m*n) // after every range has finished
	}
	// Rows per expert, for the cost estimate: the average, as the split is dynamic.
	rows := 0
	for e := 0; e < c.E; e++ {
		rows += st.wend(e, f) - st.begin(e)
	}
	st.wg = wgradArgs{dw: dw, dout: dout, in: in, m: m, n: n, prev: prev}
	head := memoHead{n: m, k: n, s: len(st.perm), d: c.DType, f1: f.accumInDtype, f2: f.sentinelWrap}
	useMemo := !st.memo.off && rows*m*n >= memoMinWork
	if useMemo {
		if e, ok := st.memo.lookup(slot, head, st.wgradKey); ok {
			p := 0
			for x := 0; x < c.E; x++ {
				if st.wend(x, f) > st.begin(x) {
					p += copy(dw[x*m*n:(x+1)*m*n], e.out[p:])
				}
			}
			st.wg.kept = true
		}
	}
	pairs := (m + 1) / 2 // per expert
	parFor(st.par, c.E*pairs, 2*n*max(1, rows/c.E), st, (*state).wgradPairs)
	if useMemo && !st.wg.kept {
		nout := 0
		for x := 0; x < c.E; x++ {
			if st.wend(x, f) > st.begin(x) {
				nout += m * n
			}
		}
		if e := st.memo.store(slot, head, nout, st.wgradKey); e != nil {
			for x := 0; x < c.E; x++ {
				if st.wend(x, f) > st.begin(x) {
					e.out = append(e.out, dw[x*m*n:(x+1)*m*n]...)
				}
			}
		}
	}
}

// wgradKey walks the key of the wgrad in progress (memo.go): the offsets (with S and
// SentinelWrap, in the head, they fix every expert's rows [begin(e), wend(e)), which cover
// [0, L) for L the largest end) and the rows [0, L) of both operands.
func (st *state) wgradKey(k *memoKey) {
	L := 0
	for e := range st.offsets {
		L = max(L, st.wend(e, st.f))
	}
	k.ints(st.offsets)
	k.floats(st.wg.dout[:L*st.wg.m])
	k.floats(st.wg.in[:L*st.wg.n])
}

// wgradArgs are the operands of the wgrad in progress (read by its ranges).
type wgradArgs struct {
	dw, dout, in []float32
	m, n         int
	prev         *staleWgrad // fault StaleEmptyWgrad's buffer
	kept         bool        // the memo wrote the blocks of the experts with rows
}

// wgradPairs is wgrad on row pairs [lo, hi) (pair x: rows 2p, 2p+1 of dW[e], x = e·pairs + p).
func (st *state) wgradPairs(lo, hi int) {
	d, f := st.cfg.DType, st.f
	dw, dout, in, m, n := st.wg.dw, st.wg.dout, st.wg.in, st.wg.m, st.wg.n
	pairs := (m + 1) / 2
	for x := lo; x < hi; x++ {
		e, r := x/pairs, x%pairs*2
		r1 := min(r+2, m) // rows [r, r1) of dW[e]
		blk := dw[e*m*n : (e+1)*m*n]
		b, end := st.begin(e), st.wend(e, f)
		o := blk[r*n : r1*n]
		if end == b {
			switch { // (the memo keeps no empty expert's block)
			case f.staleEmptyWgrad: // fault StaleEmptyWgrad: the previous run's rows, if it had the block
				clear(o)
				if pv := st.wg.prev; pv.blk == m*n && len(pv.dw) >= (e+1)*m*n {
					copy(o, pv.dw[e*m*n+r*n:e*m*n+r1*n])
				}
			case !f.emptyExpertWgrad: // fault EmptyExpertWgrad: the block keeps its poison
				clear(o)
			}
			continue
		}
		if st.wg.kept { // copied from the memo
			continue
		}
		clear(o)
		switch {
		case f.accumInDtype: // fault AccumInDtype
			for q := r; q < r1; q++ {
				gemvInDtype(d, blk[q*n:(q+1)*n], dout[b*m+q:], m, in[b*n:], n, end-b)
			}
		case r1 == r+2: // two rows of dW share the loads of in
			gemv2(blk[r*n:(r+1)*n], blk[(r+1)*n:r1*n], dout[b*m+r:], dout[b*m+r+1:], m, in[b*n:], n, end-b)
		default:
			gemv(o, dout[b*m+r:], m, in[b*n:], n, end-b)
		}
		roundAll(d, o)
	}
}

// indexAdd is the bias gradient: db[e,:] = round_d(Σ_{i : min(id(i), E−1) = e} g[i,:]) over all
// S rows in order (the index-add backward of B[ids]; the tail adds into expert E−1).
//
// Each column j is an independent output: the columns are split over st.par goroutines.
func (st *state) indexAdd(db []float32, n int, g []float32) {
	clear(db)
	st.ia = indexAddArgs{db: db, g: g, n: n}
	parFor(st.par, n, len(st.sorted), st, (*state).indexAddCols)
	roundAll(st.cfg.DType, db)
}

// indexAddArgs are the operands of the index-add in progress (read by its ranges).
type indexAddArgs struct {
	db, g []float32
	n     int
}

// indexAddCols is indexAdd's sums on columns [lo, hi).
func (st *state) indexAddCols(lo, hi int) {
	db, g, n, E := st.ia.db, st.ia.g, st.ia.n, st.cfg.E
	for i, id := range st.sorted {
		e := min(int(id), E-1)
		dst, src := db[e*n+lo:e*n+hi], g[i*n+lo:i*n+hi]
		for j := range dst {
			dst[j] += src[j]
		}
	}
}

// staleWgrad is fault StaleEmptyWgrad's persistent weight-gradient buffer: the last faulty
// run's dW (standard layout) and its per-expert block size.
type staleWgrad struct {
	dw  []float32
	blk int
}

func (s *staleWgrad) keep(dw []float32, blk int) {
	s.dw = append(s.dw[:0], dw...)
	s.blk = blk
}

// activateBackward is step 15 on rows [0, hi) (hi ≥ R): rows [0, R) from the memo where its
// entry read these h1 and d_act rows (memo.go), the others computed (activateBackwardRows).
func (st *state) activateBackward(hi int) {
	c, R := st.cfg, st.R
	I := c.I
	head := memoHead{n: 2 * I, k: I, s: R, d: c.DType, act: c.Act, f1: st.f.gateUpSwapped}
	useMemo := !st.memo.off && R*I >= memoMinWork
	if useMemo {
		if e, ok := st.memo.lookup(memoActBack, head, st.activateBackwardKey); ok {
			copy(st.dh1[:R*2*I], e.out)
			parFor(st.par, hi-R, 8*I, rowsFrom{st, R}, rowsFrom.activateBackward)
			return
		}
	}
	parFor(st.par, hi, 8*I, st, (*state).activateBackwardRows)
	if useMemo {
		if e := st.memo.store(memoActBack, head, R*2*I, st.activateBackwardKey); e != nil {
			e.out = append(e.out, st.dh1[:R*2*I]...)
		}
	}
}

// activateBackwardKey walks the activation backward's key: rows [0, R) of h1 and of d_act.
func (st *state) activateBackwardKey(k *memoKey) {
	I := st.cfg.I
	k.floats(st.h1[:st.R*2*I])
	k.floats(st.dact[:st.R*I])
}
