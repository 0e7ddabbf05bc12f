package sim

import (
	"fmt"
	"github.com/moecheck/moecheck/internal/poison"
	"math"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// specPath is docs/path.md transcribed literally, element by element, in plain fp32 loops
// (sums from +0 in index order, products rounded to float32, one storage rounding), with
// the plan from moe.Plan and the weights read through the case's index helpers. The sim
// must match it bitwise, stages and results.
func specPath(c *moe.Case) (*gpu.Result, *gpu.Stages) {
	p, err := c.Plan()
	if err != nil {
		panic(err)
	}
	S, T, H, I, E, K, d := c.S(), c.T, c.H, c.I, c.E, c.K, c.DType
	R, rd := p.Rows, d.RoundFloat32
	f := func(v float64) float32 { return float32(v) }
	w1 := func(e, j, h int) float32 { return f(c.W1[c.W1Index(e, j, h)]) }
	w2 := func(e, h, j int) float32 { return f(c.W2[c.W2Index(e, h, j)]) }
	rw := func(i int) float32 { return f(c.Routing.Weights[p.Perm[i]]) }
	st := &gpu.Stages{Perm: p.Perm, Offsets: p.Offsets,
		Xs: make([]float32, S*H), H1: make([]float32, S*2*I), Act: make([]float32, S*I), H2: make([]float32, S*H),
		O: make([]float32, S*H), DO: make([]float32, S*H), DH2: make([]float32, S*H), DAct: make([]float32, S*I),
		DH1: make([]float32, S*2*I), DXs: make([]float32, S*H)}
	r := &gpu.Result{Y: make([]float32, T*H), DX: make([]float32, T*H), DW1: make([]float32, c.LenW1()),
		DW2: make([]float32, c.LenW2()), DRW: make([]float32, S)}
	for i := range st.DAct {
		st.DAct[i] = poison.NaN(gpu.BufDAct) // never written in the tail
	}
	for i := 0; i < S; i++ {
		e, tok := int(p.Sorted[i]), int(p.Perm[i])/K
		for h := 0; h < H; h++ { // step 4
			st.Xs[i*H+h] = f(c.X[tok*H+h])
			if i >= R {
				st.Xs[i*H+h] = 0
			}
		}
		for j := 0; j < 2*I && i < R; j++ { // step 5
			var acc float32
			for h := 0; h < H; h++ {
				acc += float32(st.Xs[i*H+h] * w1(e, j, h))
			}
			if c.Bias {
				acc += f(c.B1[e*2*I+j])
			}
			st.H1[i*2*I+j] = rd(acc)
		}
		for j := 0; j < I; j++ { // step 6
			g, u := st.H1[i*2*I+c.GateCol(j)], st.H1[i*2*I+c.UpCol(j)]
			var a float32
			if c.Act == moe.GptOss {
				g, u = min(g, 7), max(-7, min(u, 7))
				a = (u + 1) * (g / (1 + float32(math.Exp(float64(-(float32(1.702) * g))))))
			} else {
				a = g / (1 + float32(math.Exp(float64(-g)))) * u
			}
			st.Act[i*I+j] = rd(a)
		}
		for h := 0; h < H; h++ { // steps 7, 8
			if i < R {
				var acc float32
				for j := 0; j < I; j++ {
					acc += float32(st.Act[i*I+j] * w2(e, h, j))
				}
				if c.Bias {
					acc += f(c.B2[e*H+h])
				}
				st.H2[i*H+h] = rd(acc)
			}
			st.O[i*H+h] = rd(st.H2[i*H+h] * rw(i))
		}
	}
	for tok := 0; tok < T; tok++ { // step 9
		for h := 0; h < H; h++ {
			var acc float32
			for k := 0; k < K; k++ {
				acc += st.O[int(p.Inv[tok*K+k])*H+h]
			}
			r.Y[tok*H+h] = rd(acc)
		}
	}
	drw := make([]float32, S)
	for i := 0; i < S; i++ {
		e, tok := int(p.Sorted[i]), int(p.Perm[i])/K
		var acc float32
		for h := 0; h < H; h++ { // steps 10–12
			st.DO[i*H+h] = f(c.DY[tok*H+h])
			acc += float32(st.DO[i*H+h] * st.H2[i*H+h])
			if i < R {
				st.DH2[i*H+h] = rd(st.DO[i*H+h] * rw(i))
			}
		}
		drw[i] = rd(acc)
		for j := 0; j < I && i < R; j++ { // step 13
			var acc float32
			for h := 0; h < H; h++ {
				acc += float32(st.DH2[i*H+h] * w2(e, h, j))
			}
			st.DAct[i*I+j] = rd(acc)
		}
		for j := 0; j < I && i < R; j++ { // step 15 (mask B backward: tail stays 0)
			dj := st.DAct[i*I+j]
			gc, uc := c.GateCol(j), c.UpCol(j)
			hg, hu := st.H1[i*2*I+gc], st.H1[i*2*I+uc]
			var dg, du float32
			if c.Act == moe.GptOss {
				g, u := min(hg, 7), max(-7, min(hu, 7))
				s := 1 / (1 + float32(math.Exp(float64(-(float32(1.702) * g)))))
				if hg <= 7 { // a selection, like torch.clamp's backward
					dg = dj * (u + 1) * (s + float32(float32(1.702)*g*s*(1-s)))
				}
				if hu >= -7 && hu <= 7 {
					du = dj * g * s
				}
			} else {
				s := 1 / (1 + float32(math.Exp(float64(-hg))))
				dg, du = dj*hu*s*(1+float32(hg*(1-s))), dj*hg*s
			}
			st.DH1[i*2*I+gc], st.DH1[i*2*I+uc] = rd(dg), rd(du)
		}
		for h := 0; h < H && i < R; h++ { // step 16
			var acc float32
			for j := 0; j < 2*I; j++ {
				acc += float32(st.DH1[i*2*I+j] * w1(e, j, h))
			}
			st.DXs[i*H+h] = rd(acc)
		}
	}
	for s := range r.DRW {
		r.DRW[s] = drw[p.Inv[s]]
	}
	for e := 0; e < E; e++ { // steps 14, 17: wgrads
		for h := 0; h < H; h++ {
			for j := 0; j < I; j++ {
				var acc float32
				for i := p.Begin(e); i < p.End(e); i++ {
					acc += float32(st.DH2[i*H+h] * st.Act[i*I+j])
				}
				r.DW2[c.W2Index(e, h, j)] = rd(acc)
			}
			for j := 0; j < 2*I; j++ {
				var acc float32
				for i := p.Begin(e); i < p.End(e); i++ {
					acc += float32(st.DH1[i*2*I+j] * st.Xs[i*H+h])
				}
				r.DW1[c.W1Index(e, j, h)] = rd(acc)
			}
		}
	}
	if c.Bias { // bias gradients: index-add over all rows by clamped id
		r.DB1, r.DB2 = make([]float32, c.LenB1()), make([]float32, c.LenB2())
		for e := 0; e < E; e++ {
			for h := 0; h < H; h++ {
				var acc float32
				for i := 0; i < S; i++ {
					if min(int(p.Sorted[i]), E-1) == e {
						acc += st.DH2[i*H+h]
					}
				}
				r.DB2[e*H+h] = rd(acc)
			}
			for j := 0; j < 2*I; j++ {
				var acc float32
				for i := 0; i < S; i++ {
					if min(int(p.Sorted[i]), E-1) == e {
						acc += st.DH1[i*2*I+j]
					}
				}
				r.DB1[e*2*I+j] = rd(acc)
			}
		}
	}
	for tok := 0; tok < T; tok++ { // step 18
		for h := 0; h < H; h++ {
			var acc float32
			for k := 0; k < K; k++ {
				acc += st.DXs[int(p.Inv[tok*K+k])*H+h]
			}
			r.DX[tok*H+h] = rd(acc)
		}
	}
	return r, st
}

// TestSpec compares the sim bitwise with specPath, results and every stage, under the
// signature poison (so an unwritten element in the sim cannot hide behind a zero).
func TestSpec(t *testing.T) {
	for n, c := range poisonCases(t) {
		t.Run(fmt.Sprintf("spec/case=%d", n), func(t *testing.T) {
			got := run(t, New(Options{}), c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true})
			want, wst := specPath(c)
			gs := got.Stages
			for _, s := range append(tensors(got), []struct {
				name string
				v    []float32
			}{{"xs", gs.Xs}, {"h1", gs.H1}, {"act", gs.Act}, {"h2", gs.H2}, {"o", gs.O}, {"d_o", gs.DO},
				{"d_h2", gs.DH2}, {"d_act", gs.DAct}, {"d_h1", gs.DH1}, {"d_xs", gs.DXs}}...) {
				w := map[string][]float32{"Y": want.Y, "DX": want.DX, "DW1": want.DW1, "DB1": want.DB1, "DW2": want.DW2,
					"DB2": want.DB2, "DRW": want.DRW, "xs": wst.Xs, "h1": wst.H1, "act": wst.Act, "h2": wst.H2, "o": wst.O,
					"d_o": wst.DO, "d_h2": wst.DH2, "d_act": wst.DAct, "d_h1": wst.DH1, "d_xs": wst.DXs}[s.name]
				if len(s.v) != len(w) {
					t.Fatalf("%s: %s has %d values, want %d", c.Config, s.name, len(s.v), len(w))
				}
				for i := range w {
					if !sameValue(s.v[i], w[i]) {
						t.Fatalf("%s: %s[%d] = %v (%#08x), docs/path.md gives %v (%#08x)", c.Config, s.name, i,
							s.v[i], math.Float32bits(s.v[i]), w[i], math.Float32bits(w[i]))
					}
				}
			}
		})
	}
}

// sameValue is bitwise equality, except that two NaNs without a buffer signature are equal:
// which NaN operand's payload and sign x86 propagates depends on the operand order the
// compiler picks for a commutative operation, which two transcriptions need not share.
func sameValue(a, b float32) bool {
	if math.Float32bits(a) == math.Float32bits(b) {
		return true
	}
	_, sa := poison.Of(a)
	_, sb := poison.Of(b)
	return a != a && b != b && !sa && !sb
}
