package simtorch

import (
	"math"
	"math/rand/v2"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// run holds one case's computation. Every tensor is float32 holding dtype values; rows of
// stage tensors are sorted rows (docs/path.md's notation).
type run struct {
	fr  freedoms
	c   *moe.Case
	p   *moe.Plan
	d   moe.DType
	rng *rand.Rand

	S, T, H, I, E, K, R int

	x, dy, rw  []float32 // T×H, T×H, S (slot order)
	w1, w2     []float32 // per expert, standard layout: W1 2I×H, W2 H×I
	b1, b2     []float32 // E×2I, E×H (nil without biases)
	xs, h1, a  []float32 // S×H, S×2I, S×I
	h2, o, y   []float32 // S×H, S×H, T×H
	do, dh2    []float32 // S×H
	drw        []float32 // S, sorted rows
	dact, dh1  []float32 // S×I, S×2I
	dxs, dx    []float32 // S×H, T×H
	dw1, dw2   []float32 // standard layout
	db1, db2   []float32
	tok, group []int // sorted row → token, expert (E for the tail)
}

func f32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// freedoms selects which of the torch contract's rounding choices the model makes; each one
// off makes the model compute that stage as docs/path.md does. New uses torchFreedoms; the
// tests switch them one by one to show that each contract needs each of its freedoms.
type freedoms struct {
	biasAfter     bool // bias added after the GEMM's rounding, rounded again
	eagerAct      bool // the activation as eager ops, each rounded to the dtype
	drwDtype      bool // d_rw's products rounded to the dtype before the sum
	combineAtomic bool // K-slot combine: dtype adds in a per-run order
	scatterAtomic bool // dX's K-slot sum: dtype adds in a per-run order
	biasAtomic    bool // bias gradients: dtype adds in a per-run order
	weightFP32    bool // o = h2·rw kept in fp32 into the combine (not a torch choice; any allows it)
	wgradSlots    bool // dW1, dW2 from per-slot products rounded to the dtype, added by index_put_ (batched_mm)
	splitDtype    bool // bf16/fp16 GEMMs reduce split-K partial sums in the dtype (cuBLAS's reduced-precision reduction)
}

// torchFreedoms is every torch choice; New's backend draws wgradSlots per run (WGradMode).
func torchFreedoms() freedoms {
	return freedoms{biasAfter: true, eagerAct: true, drwDtype: true, combineAtomic: true, scatterAtomic: true, biasAtomic: true,
		wgradSlots: true}
}

func newRun(c *moe.Case, p *moe.Plan, rng *rand.Rand, fr freedoms) *run {
	r := &run{fr: fr, c: c, p: p, d: c.DType, rng: rng, S: c.S(), T: c.T, H: c.H, I: c.I, E: c.E, K: c.K, R: p.Rows}
	r.x, r.dy, r.rw = f32(c.X), f32(c.DY), f32(c.Routing.Weights)
	H, I, E := r.H, r.I, r.E
	r.w1 = make([]float32, E*2*I*H)
	r.w2 = make([]float32, E*H*I)
	for e := 0; e < E; e++ {
		for j := 0; j < 2*I; j++ {
			for h := 0; h < H; h++ {
				r.w1[(e*2*I+j)*H+h] = float32(c.W1[c.W1Index(e, j, h)])
			}
		}
		for h := 0; h < H; h++ {
			for j := 0; j < I; j++ {
				r.w2[(e*H+h)*I+j] = float32(c.W2[c.W2Index(e, h, j)])
			}
		}
	}
	if c.Bias {
		r.b1, r.b2 = f32(c.B1), f32(c.B2)
	}
	r.tok = make([]int, r.S)
	r.group = make([]int, r.S)
	for i, s := range p.Perm {
		r.tok[i] = int(s) / r.K
		r.group[i] = int(p.Sorted[i])
	}
	return r
}

// rows returns expert e's sorted rows [b, end).
func (r *run) rows(e int) (int, int) { return r.p.Begin(e), r.p.End(e) }

func (r *run) round(x float32) float32 { return r.d.RoundFloat32(x) }

func (r *run) forward() {
	S, H, I, R := r.S, r.H, r.I, r.R
	// gather (current_hidden_states[perm]); the masked tail is zero
	r.xs = make([]float32, S*H)
	for i := 0; i < R; i++ {
		copy(r.xs[i*H:(i+1)*H], r.x[r.tok[i]*H:(r.tok[i]+1)*H])
	}
	// grouped_mm 1, then + bias[ids] (a separate op, rounded again); mask B: tail zero
	r.h1 = make([]float32, S*2*I)
	for e := 0; e < r.E; e++ {
		b, end := r.rows(e)
		r.groupedMM(r.h1, 2*I, r.xs, H, r.w1[e*2*I*H:(e+1)*2*I*H], b, end, false, r.accBias(r.b1, 2*I, e))
		r.addBias(r.h1, 2*I, r.b1, e, b, end)
	}
	// activation as eager ops
	r.a = make([]float32, S*I)
	for i := 0; i < R; i++ {
		for j := 0; j < I; j++ {
			g, u := r.h1[i*2*I+r.c.GateCol(j)], r.h1[i*2*I+r.c.UpCol(j)]
			r.a[i*I+j] = r.actForward(g, u)
		}
	}
	// grouped_mm 2, + bias; mask C
	r.h2 = make([]float32, S*H)
	for e := 0; e < r.E; e++ {
		b, end := r.rows(e)
		r.groupedMM(r.h2, H, r.a, I, r.w2[e*H*I:(e+1)*H*I], b, end, false, r.accBias(r.b2, H, e))
		r.addBias(r.h2, H, r.b2, e, b, end)
	}
	// out * sample_weights (rounded), then index_add_ into zeros: one rounding per add, in a
	// per-run order
	r.o = make([]float32, S*H)
	for i := 0; i < S; i++ {
		w := r.rw[r.p.Perm[i]]
		for h := 0; h < H; h++ {
			r.o[i*H+h] = r.h2[i*H+h] * w
			if !r.fr.weightFP32 {
				r.o[i*H+h] = r.round(r.o[i*H+h])
			}
		}
	}
	r.y = r.slotSum(r.o, r.fr.combineAtomic)
}

// accBias is expert e's bias when it goes into the GEMM's fp32 accumulator (docs/path.md),
// nil when it is added after the rounding (torch) or there is none.
func (r *run) accBias(bias []float32, n, e int) []float32 {
	if bias == nil || r.fr.biasAfter {
		return nil
	}
	return bias[e*n : (e+1)*n]
}

// addBias adds bias[e] to rows [b, end) of out (row length n) as a separate elementwise op.
func (r *run) addBias(out []float32, n int, bias []float32, e, b, end int) {
	if bias == nil || !r.fr.biasAfter {
		return
	}
	for i := b; i < end; i++ {
		for j := 0; j < n; j++ {
			out[i*n+j] = r.round(out[i*n+j] + bias[e*n+j])
		}
	}
}

// slotSum is index_add_ / index_put_(accumulate=True) of per-sorted-row values into a T×H
// zero tensor: each of a token's K slots is added with one rounding to the dtype, in an
// order drawn per token (as atomics land). Without atomic: docs/path.md's fp32 sum in slot
// order from +0, one rounding.
func (r *run) slotSum(rows []float32, atomic bool) []float32 {
	H, K := r.H, r.K
	out := make([]float32, r.T*H)
	order := make([]int, K)
	if !atomic {
		for t := 0; t < r.T; t++ {
			y := out[t*H : (t+1)*H]
			for k := 0; k < K; k++ {
				i := int(r.p.Inv[t*K+k])
				for h := range y {
					y[h] += rows[i*H+h]
				}
			}
			for h := range y {
				y[h] = r.round(y[h])
			}
		}
		return out
	}
	for t := 0; t < r.T; t++ {
		for k := range order {
			order[k] = k
		}
		r.rng.Shuffle(K, func(a, b int) { order[a], order[b] = order[b], order[a] })
		y := out[t*H : (t+1)*H]
		for _, k := range order {
			i := int(r.p.Inv[t*K+k])
			for h := range y {
				y[h] = r.round(y[h] + rows[i*H+h])
			}
		}
	}
	return out
}

func (r *run) backward() {
	S, H, I, R := r.S, r.H, r.I, r.R
	r.do = make([]float32, S*H)
	for i := 0; i < S; i++ {
		copy(r.do[i*H:(i+1)*H], r.dy[r.tok[i]*H:(r.tok[i]+1)*H])
	}
	// grad of sample_weights: (grad_out * h2).sum(-1), products rounded, fp32 tree sum
	r.drw = make([]float32, S)
	prod := make([]float32, H)
	for i := 0; i < S; i++ {
		for h := 0; h < H; h++ {
			prod[h] = r.do[i*H+h] * r.h2[i*H+h]
			if r.fr.drwDtype {
				prod[h] = r.round(prod[h])
			}
		}
		r.drw[i] = r.round(treeSum(prod))
	}
	r.dh2 = make([]float32, S*H)
	for i := 0; i < R; i++ {
		w := r.rw[r.p.Perm[i]]
		for h := 0; h < H; h++ {
			r.dh2[i*H+h] = r.round(r.do[i*H+h] * w)
		}
	}
	// grouped_mm 2 backward: dgrad and wgrad; bias gradient by atomics
	r.dact = make([]float32, S*I)
	r.dw2 = make([]float32, r.E*H*I)
	if r.c.Bias {
		r.db2 = make([]float32, r.E*H)
	}
	for e := 0; e < r.E; e++ {
		b, end := r.rows(e)
		r.groupedMM(r.dact, I, r.dh2, H, r.w2[e*H*I:(e+1)*H*I], b, end, true, nil)
		r.weightGrad(r.dw2[e*H*I:(e+1)*H*I], r.dh2, H, r.a, I, b, end)
		r.biasGrad(r.db2, r.dh2, H, e, b, end)
	}
	// activation backward (autograd of the eager ops); mask B backward: tail zero
	r.dh1 = make([]float32, S*2*I)
	for i := 0; i < R; i++ {
		for j := 0; j < I; j++ {
			gc, uc := r.c.GateCol(j), r.c.UpCol(j)
			dg, du := r.actBackward(r.h1[i*2*I+gc], r.h1[i*2*I+uc], r.dact[i*I+j])
			r.dh1[i*2*I+gc], r.dh1[i*2*I+uc] = dg, du
		}
	}
	r.dxs = make([]float32, S*H)
	r.dw1 = make([]float32, r.E*2*I*H)
	if r.c.Bias {
		r.db1 = make([]float32, r.E*2*I)
	}
	for e := 0; e < r.E; e++ {
		b, end := r.rows(e)
		r.groupedMM(r.dxs, H, r.dh1, 2*I, r.w1[e*2*I*H:(e+1)*2*I*H], b, end, true, nil)
		r.weightGrad(r.dw1[e*2*I*H:(e+1)*2*I*H], r.dh1, 2*I, r.xs, H, b, end)
		r.biasGrad(r.db1, r.dh1, 2*I, e, b, end)
	}
	r.dx = r.slotSum(r.dxs, r.fr.scatterAtomic)
}

// biasGrad is the index backward of bias[ids]: the rows of expert e (the last expert also
// gets the masked, zero tail by the clamped id) added into db[e] one rounding per add, in a
// per-run order.
func (r *run) biasGrad(db, dout []float32, n, e, b, end int) {
	if db == nil {
		return
	}
	if e == r.E-1 {
		end = r.S
	}
	acc := db[e*n : (e+1)*n]
	if !r.fr.biasAtomic { // fp32 in row order, one rounding
		for i := b; i < end; i++ {
			for j := range acc {
				acc[j] += dout[i*n+j]
			}
		}
		for j := range acc {
			acc[j] = r.round(acc[j])
		}
		return
	}
	order := r.rng.Perm(end - b)
	for _, k := range order {
		i := b + k
		for j := range acc {
			acc[j] = r.round(acc[j] + dout[i*n+j])
		}
	}
}

// treeSum sums v in fp32 pairwise (a reduction kernel's tree).
func treeSum(v []float32) float32 {
	switch len(v) {
	case 0:
		return 0
	case 1:
		return v[0]
	}
	m := len(v) / 2
	return treeSum(v[:m]) + treeSum(v[m:])
}

func (r *run) result() *gpu.Result {
	c := r.c
	res := &gpu.Result{Y: r.y, DX: r.dx, DW1: make([]float32, len(r.dw1)), DW2: make([]float32, len(r.dw2)), DRW: make([]float32, r.S)}
	H, I := r.H, r.I
	for e := 0; e < r.E; e++ {
		for j := 0; j < 2*I; j++ {
			for h := 0; h < H; h++ {
				res.DW1[c.W1Index(e, j, h)] = r.dw1[(e*2*I+j)*H+h]
			}
		}
		for h := 0; h < H; h++ {
			for j := 0; j < I; j++ {
				res.DW2[c.W2Index(e, h, j)] = r.dw2[(e*H+h)*I+j]
			}
		}
	}
	for i, s := range r.p.Perm {
		res.DRW[s] = r.drw[i]
	}
	if c.Bias {
		res.DB1, res.DB2 = r.db1, r.db2
	}
	return res
}

// expf is fp32 exp (correctly rounded here; the oracle allows 2 ulp).
func expf(x float32) float32 { return float32(math.Exp(float64(x))) }
