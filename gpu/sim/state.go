package sim

import (
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// state is one Run's working set. It lives in the Backend and is reused, so a Run allocates
// only when a size grows (and for the Result it returns).
type state struct {
	run uint64     // index of this Run on its Backend
	par split      // how the stages split their loops (parFor); set by Run
	cfg moe.Config // the case's config; set by Run
	f   faults     // the Run's faults; set by Run

	// Operands of the GEMM stage in progress, for its ranges (forward.go, backward.go).
	g  gemmArgs
	wg wgradArgs
	ia indexAddArgs

	// Inputs as float32: weights in both layouts (standard for the dgrads, transposed for
	// the forward GEMMs so every GEMM reads its weight matrix row by row).
	x, dy, w1, w1t, w2, w2t, b1, b2 []float32
	in                              loaded // what they were converted from (input.go)
	// wgen1, wgen2: the conversion generations of W1 (both layouts) and W2, counted up each
	// time load writes them: the memo's proof that a GEMM reads the weights it read before.
	wgen1, wgen2 uint64
	memo         memo // the stages' last computations (memo.go)

	// Routing (plan.go).
	ids     []int32   // local id per slot after the EP map (and ClampSentinel)
	rw      []float32 // routing weight per slot
	zeroTok int       // ZeroTokenRow's token, −1 if none
	hist    []int     // ids per bin 0..E
	next    []int     // counting-sort cursors
	perm    []int32   // sorted row → slot
	inv     []int32   // slot → sorted row
	sorted  []int32   // id of each sorted row
	offsets []int32   // per-expert offsets as the path computed them
	R       int       // Offsets[E−1]: rows ≥ R are the tail
	rowF    []int32   // expert whose weights the forward GEMMs use per row (−1: not written)
	rowW    []int32   // same for the dgrads
	rowG    []int32   // group of the row (its forward bias), −1 outside every group
	second  []bool    // gemm's scratch: row is the second of a pair

	// Device buffers, from the pool.
	xs, h1, act, h2, o, y, do, drw, dh2, dact, dh1, dxs, dx, dw1, db1, dw2, db2 []float32

	// Fault StaleEmptyWgrad's buffers, kept from run to run of the Backend.
	prevDW1, prevDW2 staleWgrad
}

// takeBuffers takes and poisons every buffer of gpu.Buffers() for config c.
func (st *state) takeBuffers(p *pool, c moe.Config, opts gpu.RunOptions) {
	S, T, H, I, d := c.S(), c.T, c.H, c.I, c.DType
	nb1, nb2 := 0, 0
	if c.Bias {
		nb1, nb2 = c.LenB1(), c.LenB2()
	}
	take := func(b gpu.Buffer, n int) []float32 { return p.take(b, n, d, opts.Poison, opts.PoisonSeed, st.par) }
	st.xs = take(gpu.BufXs, S*H)
	st.h1 = take(gpu.BufH1, S*2*I)
	st.act = take(gpu.BufAct, S*I)
	st.h2 = take(gpu.BufH2, S*H)
	st.o = take(gpu.BufO, S*H)
	st.y = take(gpu.BufY, T*H)
	st.do = take(gpu.BufDO, S*H)
	st.drw = take(gpu.BufDRW, S)
	st.dh2 = take(gpu.BufDH2, S*H)
	st.dact = take(gpu.BufDAct, S*I)
	st.dh1 = take(gpu.BufDH1, S*2*I)
	st.dxs = take(gpu.BufDXs, S*H)
	st.dx = take(gpu.BufDX, T*H)
	st.dw1 = take(gpu.BufDW1, c.LenW1())
	st.db1 = take(gpu.BufDB1, nb1)
	st.dw2 = take(gpu.BufDW2, c.LenW2())
	st.db2 = take(gpu.BufDB2, nb2)
}

// bytes is the state's working set: the capacity of every slice it holds, in bytes.
func (st *state) bytes() int {
	n := 0
	for _, v := range [][]float32{st.x, st.dy, st.w1, st.w1t, st.w2, st.w2t, st.b1, st.b2, st.rw,
		st.xs, st.h1, st.act, st.h2, st.o, st.y, st.do, st.drw, st.dh2, st.dact, st.dh1, st.dxs, st.dx,
		st.dw1, st.db1, st.dw2, st.db2} {
		n += 4 * cap(v)
	}
	for _, v := range [][]int32{st.ids, st.perm, st.inv, st.sorted, st.offsets, st.rowF, st.rowW, st.rowG} {
		n += 4 * cap(v)
	}
	return n + 8*(cap(st.hist)+cap(st.next)) + cap(st.second) + 4*st.memo.used()
}
