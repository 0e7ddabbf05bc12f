package reference_test

import (
	"math"
	"slices"
	"testing"

	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// param is one differentiable input tensor of a case, with Run's gradient for it.
type param struct {
	name string
	v    []float64 // the case's tensor, perturbed in place
	grad []float64 // Run's gradient
	mag  []float64 // Magnitude's bound on the gradient's terms
	// dh1 gives, for coordinate idx, the change of GEMM 1's output row of slot s per unit
	// change of the coordinate (nil for slots it does not touch); nil for tensors in which
	// L is affine (W2, B2, routing weights).
	dh1 func(idx int) func(s int) []float64
}

func params(c *moe.Case, res, mag *reference.Result) []param {
	H, I2, K := c.H, 2*c.I, c.K
	row := func(s, e int) bool { return int(c.Routing.IDs[s]) == e }
	ps := []param{
		{"X", c.X, res.DX, mag.DX, func(idx int) func(int) []float64 {
			t, h := idx/H, idx%H
			return func(s int) []float64 {
				if s/K != t || int(c.Routing.IDs[s]) == c.E {
					return nil
				}
				d := make([]float64, I2)
				for j := range d {
					d[j] = c.W1[c.W1Index(int(c.Routing.IDs[s]), j, h)]
				}
				return d
			}
		}},
		{"W1", c.W1, res.DW1, mag.DW1, func(idx int) func(int) []float64 {
			e, rem := idx/(I2*H), idx%(I2*H)
			j, h := rem/H, rem%H
			if c.Layout == moe.Transposed {
				h, j = rem/I2, rem%I2
			}
			return func(s int) []float64 {
				if !row(s, e) {
					return nil
				}
				d := make([]float64, I2)
				d[j] = c.X[(s/K)*H+h]
				return d
			}
		}},
		{"W2", c.W2, res.DW2, mag.DW2, nil},
		{"RW", c.Routing.Weights, res.DRW, mag.DRW, nil},
	}
	if c.Bias {
		ps = append(ps, param{"B1", c.B1, res.DB1, mag.DB1, func(idx int) func(int) []float64 {
			e, j := idx/I2, idx%I2
			return func(s int) []float64 {
				if !row(s, e) {
					return nil
				}
				d := make([]float64, I2)
				d[j] = 1
				return d
			}
		}}, param{"B2", c.B2, res.DB2, mag.DB2, nil})
	}
	return ps
}

// fdStep is the central-difference step for a coordinate of value v: cbrt(u)·scale with
// u = 2⁻⁵³ (cbrt(u) = 2^−17.67, taken as 2⁻¹⁸ ≈ 3.8e−6) and scale the power of two in
// (max(1,|v|), 2·max(1,|v|)], so h ≈ 3.8e−6…7.6e−6 relative to the coordinate's size.
func fdStep(v float64) float64 {
	_, e := math.Frexp(math.Max(1, math.Abs(v)))
	return math.Ldexp(1, e-18)
}

// propagation bounds how much the float64 rounding of one stage of Run's backward is
// amplified relative to the magnitudes downstream. Forward it is fwdPropagation; backward,
// an error δ ≤ ε·M_g of the gate reaches d_g through |d_act·u·∂silu'/∂g| ≤ α·½·M(d_act)·M_u·δ
// (α ≤ 1.702) against M(d_g) = M(d_act)·M_u·D with D ≥ ½, a ratio ≤ 1.702·M_g. We take
// 4·(1 + max M(h1)), which covers both.
func propagation(mag *reference.Result) float64 { return 4 * (1 + maxAbs(mag.Stages.H1)) }

// TestFiniteDifferences proves Run's gradients are the gradients of the forward function:
// for 1000 small random cases (see smallCase for what they cover) and every coordinate of
// every differentiable input (X, W1, B1, W2, B2, routing weights) it compares Run's
// gradient with the central difference (L(θ+h) − L(θ−h))/(θ₊ − θ₋) of L = Σ dY·Y,
// evaluated by the independent naive model (naive_test.go).
//
// Tolerance, per coordinate (all three terms are bounds, the factor 2 is slack):
//
//		|fd − g| ≤ 2·( R / h  +  h²/6 · B3  +  γ_nG·P·M_g )
//
//	  - rounding of the two loss evaluations: each is off by at most R = lossRounding()
//	    = (3·P_f + 24)·u·M_L with M_L = Σ|dY|·M(Y) from the magnitude pass (the naive model
//	    sums with compensation, so no length enters); the quotient divides their sum by 2h.
//	    With h ≈ 3.8e−6 and P_f ≈ 4…10, R/h ≈ 1e−9…2e−9 · M_L;
//	  - truncation of the central difference: h²/6·|L'''| with B3 = thirdDerivBound ≥ |L'''|
//	    on the interval; zero for W2, B2 and the routing weights, in which L is affine;
//	    h²/6 ≈ 2.4e−12·scale²;
//	  - rounding of Run's own gradient (Dgemm, plain sums): γ_nG·P·M_g with P = propagation(),
//	    nG = S + T + H + 2I + K + 16 the longest chain of operations forming a gradient element
//	    and M_g the magnitude pass's bound of the element; ≈ 1e−14·M_g here.
//
// gpt-oss's clamps are kinks: a coordinate whose interval [θ−h, θ+h] moves any gate or up
// value across ±7 (its clamp state differs at the two ends; g and u are affine in θ, so equal
// states mean no crossing) is skipped and counted; the test requires that few are.
// Coordinates that cannot influence L (sentinel routing weights, empty experts' weights)
// must give exactly 0 on both sides.
func TestFiniteDifferences(t *testing.T) {
	const cases = 1000
	cv := coverage{}
	var coords, skipped, exact int
	var worst float64 // largest |fd − g|/tol seen
	for seed := uint64(1); seed <= cases; seed++ {
		c := smallCase(t, seed)
		cv.add(c)
		res, err := reference.Run(c, reference.Options{})
		if err != nil {
			t.Fatalf("seed %d (%s): %v", seed, c.Config, err)
		}
		mag, err := reference.Magnitude(c, reference.Options{Stages: true})
		if err != nil {
			t.Fatalf("seed %d: magnitude: %v", seed, err)
		}
		P := propagation(mag)
		nG := c.S() + c.T + c.H + 2*c.I + c.K + 16
		R := lossRounding(c, mag)
		ML := lossMagnitude(c, mag.Y)

		// The forward agrees with the naive model: Run's Y is off by ≤ γ_n·P_f·M(Y) with
		// n = H + I + K + 18 (its sums plus the activation), the naive model's by
		// ≤ (3P_f + 24)·u·M(Y) (lossRounding without the loss sum); 2× slack.
		y, _ := naiveForward(c)
		Pf := fwdPropagation(mag)
		for i := range y {
			bound := 2 * (gamma(c.H+c.I+c.K+18)*Pf + (3*Pf+24)*u64) * mag.Y[i]
			if d := math.Abs(y[i] - res.Y[i]); d > bound {
				t.Fatalf("seed %d (%s): Y[%d] = %v, naive model %v (diff %.3g > bound %.3g)",
					seed, c.Config, i, res.Y[i], y[i], d, bound)
			}
		}

		for _, p := range params(c, res, mag) {
			for idx := range p.v {
				theta := p.v[idx]
				h := fdStep(theta)
				p.v[idx] = theta + h
				xp := p.v[idx]
				lp, sp := naiveLoss(c)
				p.v[idx] = theta - h
				xm := p.v[idx]
				lm, sm := naiveLoss(c)
				p.v[idx] = theta
				coords++
				if !slices.Equal(sp, sm) {
					skipped++ // the interval crosses a gpt-oss clamp point
					continue
				}
				fd := (lp - lm) / (xp - xm)
				g := p.grad[idx]
				if lp == lm && g == 0 && p.mag[idx] == 0 {
					exact++ // a coordinate that cannot reach L: both sides exactly 0
					continue
				}
				var b3 float64
				if p.dh1 != nil {
					b3 = thirdDerivBound(c, p.dh1(idx), h)
				}
				tol := 2 * (R/h + h*h/6*b3 + gamma(nG)*P*p.mag[idx])
				worst = math.Max(worst, math.Abs(fd-g)/tol)
				if math.Abs(fd-g) > tol || math.IsNaN(fd-g) {
					t.Fatalf("seed %d (%s): d%s[%d]: Run %v, central difference %v (|diff| %.3g > tol %.3g; h %.3g, B3 %.3g, M_L %.3g)",
						seed, c.Config, p.name, idx, g, fd, math.Abs(fd-g), tol, h, b3, ML)
				}
			}
		}
		// Coordinates that cannot influence L: exactly zero gradients, +0.
		for s, id := range c.Routing.IDs {
			if int(id) == c.E && (res.DRW[s] != 0 || math.Signbit(res.DRW[s])) {
				t.Fatalf("seed %d: sentinel slot %d (weight %v) has routing-weight gradient %v, want +0", seed, s, c.Routing.Weights[s], res.DRW[s])
			}
		}
	}
	cv.require(t)
	if skipped*50 > coords {
		t.Errorf("%d of %d coordinates skipped at gpt-oss clamp points: more than 2%%", skipped, coords)
	}
	t.Logf("%d cases, %d coordinates checked (%d exactly zero, %d skipped at clamp points), worst |fd−g|/tol %.3g; coverage %v",
		cases, coords, exact, skipped, worst, cv)
}
