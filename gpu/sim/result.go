package sim

import (
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// result copies the outputs into a new Result (one allocation for every tensor): weight
// gradients in the case's layout, DRW in slot order. The stages, when asked, are the pool's
// buffers themselves, handed over to the Result (the pool allocates new ones for the next
// Run): a copy would double the memory of a large case, whose stages are most of it.
func (st *state) result(c moe.Config, stages bool, p *pool) *gpu.Result {
	S, T, H, I, E := c.S(), c.T, c.H, c.I, c.E
	nb1, nb2 := 0, 0
	if c.Bias {
		nb1, nb2 = c.LenB1(), c.LenB2()
	}
	slab := make([]float32, 2*T*H+c.LenW1()+c.LenW2()+nb1+nb2+S)
	cut := func(n int) []float32 {
		v := slab[:n:n]
		slab = slab[n:]
		return v
	}
	r := &gpu.Result{Y: cut(T * H), DX: cut(T * H), DW1: cut(c.LenW1()), DW2: cut(c.LenW2()), DRW: cut(S)}
	st.copy(r.Y, st.y)
	st.copy(r.DX, st.dx)
	if c.Layout == moe.Transposed {
		st.transpose(r.DW1, st.dw1, E, 2*I, H)
		st.transpose(r.DW2, st.dw2, E, H, I)
	} else {
		st.copy(r.DW1, st.dw1)
		st.copy(r.DW2, st.dw2)
	}
	if c.Bias {
		r.DB1, r.DB2 = cut(nb1), cut(nb2)
		copy(r.DB1, st.db1)
		copy(r.DB2, st.db2)
	}
	for s := range r.DRW {
		r.DRW[s] = st.drw[st.inv[s]]
	}
	if stages {
		lend := func(b gpu.Buffer, v []float32) []float32 {
			if len(v) == 0 {
				return nil
			}
			p.lent[b] = true
			return v
		}
		r.Stages = &gpu.Stages{
			Perm:    append([]int32(nil), st.perm...),
			Offsets: append([]int32(nil), st.offsets...),
			Xs:      lend(gpu.BufXs, st.xs), H1: lend(gpu.BufH1, st.h1), Act: lend(gpu.BufAct, st.act),
			H2: lend(gpu.BufH2, st.h2), O: lend(gpu.BufO, st.o), DO: lend(gpu.BufDO, st.do),
			DH2: lend(gpu.BufDH2, st.dh2), DAct: lend(gpu.BufDAct, st.dact), DH1: lend(gpu.BufDH1, st.dh1),
			DXs: lend(gpu.BufDXs, st.dxs),
		}
	}
	return r
}
