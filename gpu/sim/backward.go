package sim

import "github.com/moecheck/moecheck/moe"

// backward runs docs/path.md steps 10–18.
func (st *state) backward(c moe.Config, f faults) {
	S, H, I, I2, K, d := c.S(), c.H, c.I, 2*c.I, c.K, c.DType
	R := st.R

	// Step 10: gather d_o[i] = dY[tok(i)] for all rows.
	for i := 0; i < S; i++ {
		t := int(st.perm[i]) / K
		copy(st.do[i*H:(i+1)*H], st.dy[t*H:(t+1)*H])
	}

	// Step 11: d_rw[i] = round_d(Σ_h d_o·h2), all rows (leak 1 reads h2's tail here).
	for i := 0; i < S; i++ {
		do, h2 := st.do[i*H:(i+1)*H], st.h2[i*H:(i+1)*H]
		var acc float32
		for h, v := range do {
			acc += float32(v * h2[h])
		}
		st.drw[i] = d.RoundFloat32(acc)
	}

	// Step 12: d_h2 = round_d(d_o · rw[slot]) for i < R; 0 in the tail (backward of mask C,
	// or of MaskAfterWeight's mask on o: d(h2·rw) = 0 there). With the masks dropped
	// (TailStaleUnmasked, SentinelWrap) the tail is computed like the other rows.
	for i := 0; i < S; i++ {
		dh := st.dh2[i*H : (i+1)*H]
		if i >= R && (f.maskC || f.maskO) {
			clear(dh)
			continue
		}
		w := st.rw[st.perm[i]]
		for h, v := range st.do[i*H : (i+1)*H] {
			dh[h] = d.RoundFloat32(v * w)
		}
	}

	// Step 13: GEMM 2 dgrad, d_act = d_h2 · W2[e] (W2 standard: H rows of I); tail unwritten.
	st.gemm(c, f, st.dact, I, st.dh2, H, st.w2, st.rowW, nil)

	// Step 14: GEMM 2 wgrad dW2[e,h,:] = Σ_{i ∈ rows(e)} d_h2[i,h]·act[i,:]; bias by index-add.
	st.wgrad(c, f, st.dw2, H, I, st.dh2, st.act, &st.prevDW2)
	if c.Bias {
		st.indexAdd(c, st.db2, H, st.dh2)
	}

	// Step 15: activation backward on all rows; mask B's backward zeroes the tail (computing
	// the tail first would give the same zeros, so only rows < R are computed then).
	if f.maskB {
		st.activateBackward(c, f, R)
		clear(st.dh1[R*I2:])
	} else {
		st.activateBackward(c, f, S) // NoMaskDownDgrad: the unwritten d_act tail goes on (leak 3)
	}

	// Step 16: GEMM 1 dgrad, d_xs = d_h1 · W1[e] (W1 standard: 2I rows of H); mask A's backward.
	st.gemm(c, f, st.dxs, H, st.dh1, I2, st.w1, st.rowW, nil)
	if f.maskA {
		clear(st.dxs[R*H:])
	} // else NoMaskUpDgrad: the unwritten d_xs tail is scatter-added below (leak 2)

	// Step 17: GEMM 1 wgrad dW1[e,j,:] = Σ_{i ∈ rows(e)} d_h1[i,j]·xs[i,:]; bias by index-add.
	st.wgrad(c, f, st.dw1, I2, H, st.dh1, st.xs, &st.prevDW1)
	if c.Bias {
		st.indexAdd(c, st.db1, I2, st.dh1)
	}

	// Step 18: scatter-add dX[t] = round_d(Σ_k d_xs[Inv[t·K+k]]), fp32 from +0 in k order.
	for t := 0; t < c.T; t++ {
		dx := st.dx[t*H : (t+1)*H]
		clear(dx)
		for _, k := range st.slotOrder(c, f, t) {
			src := st.dxs[int(st.inv[t*K+k])*H:]
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
func (st *state) wgrad(c moe.Config, f faults, dw []float32, m, n int, dout, in []float32, prev *staleWgrad) {
	d := c.DType
	if f.staleEmptyWgrad {
		defer prev.keep(dw, m*n)
	}
	for e := 0; e < c.E; e++ {
		lo, hi := st.begin(e), st.wend(e, f)
		blk := dw[e*m*n : (e+1)*m*n]
		if hi == lo {
			switch {
			case f.staleEmptyWgrad: // fault StaleEmptyWgrad: the previous run's block, if it had one
				clear(blk)
				if prev.blk == m*n && len(prev.dw) >= (e+1)*m*n {
					copy(blk, prev.dw[e*m*n:(e+1)*m*n])
				}
			case !f.emptyExpertWgrad: // fault EmptyExpertWgrad: the block keeps its poison
				clear(blk)
			}
			continue
		}
		clear(blk)
		for r := 0; r < m; r++ {
			o := blk[r*n : (r+1)*n]
			switch {
			case f.accumInDtype: // fault AccumInDtype
				gemvInDtype(d, o, dout[lo*m+r:], m, in[lo*n:], n, hi-lo)
			case r+1 < m: // two rows of dW share the loads of in
				gemv2(o, blk[(r+1)*n:(r+2)*n], dout[lo*m+r:], dout[lo*m+r+1:], m, in[lo*n:], n, hi-lo)
				r++
			default:
				gemv(o, dout[lo*m+r:], m, in[lo*n:], n, hi-lo)
			}
		}
		roundAll(d, blk)
	}
}

// indexAdd is the bias gradient: db[e,:] = round_d(Σ_{i : min(id(i), E−1) = e} g[i,:]) over all
// S rows in order (the index-add backward of B[ids]; the tail adds into expert E−1).
func (st *state) indexAdd(c moe.Config, db []float32, n int, g []float32) {
	clear(db)
	for i, id := range st.sorted {
		e := min(int(id), c.E-1)
		dst, src := db[e*n:(e+1)*n], g[i*n:(i+1)*n]
		for j := range dst {
			dst[j] += src[j]
		}
	}
	roundAll(c.DType, db)
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
