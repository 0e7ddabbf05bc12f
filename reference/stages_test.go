package reference_test

import (
	"math"
	"testing"

	"github.com/moecheck/moecheck/reference"
)

// TestStages checks the stage intermediates against their definitions (docs/path.md) and
// the outputs, for Run and for Magnitude:
//   - bitwise: DRW by sorted row is Result.DRW permuted; O = rw·H2 and DH2 = rw·DO on real
//     rows; DO is dY gathered on every row; the sentinel tail is +0 in every other stage;
//   - within rounding: Y and DX are the K-slot sums of O and DXs (γ_K·M, doubled), and on
//     real rows H1 matches the naive model's GEMM 1 (γ_{H+1} + 3u, doubled) and Act the
//     naive activation of H1 (same formula: ≤ 16u·M(act)).
func TestStages(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		c := smallCase(t, seed)
		res, err := reference.Run(c, reference.Options{Stages: true})
		if err != nil {
			t.Fatal(err)
		}
		mag, err := reference.Magnitude(c, reference.Options{Stages: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []*reference.Result{res, mag} {
			isMag := r == mag
			st, p := r.Stages, r.Plan
			H, I := c.H, c.I
			val := func(v float64) float64 {
				if isMag {
					return math.Abs(v)
				}
				return v
			}
			fail := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("seed %d (%s, magnitude %v): "+format, append([]any{seed, c.Config, isMag}, args...)...)
			}
			for i := 0; i < c.S(); i++ {
				s := int(p.Perm[i])
				tok := s / c.K
				w := val(c.Routing.Weights[s])
				if math.Float64bits(st.DRW[i]) != math.Float64bits(r.DRW[s]) {
					fail("DRW stage row %d = %v, DRW[slot %d] = %v", i, st.DRW[i], s, r.DRW[s])
				}
				for h := 0; h < H; h++ {
					if st.DO[i*H+h] != val(c.DY[tok*H+h]) {
						fail("DO[%d,%d] = %v, want dY[%d,%d] = %v", i, h, st.DO[i*H+h], tok, h, c.DY[tok*H+h])
					}
				}
				if i >= p.Rows { // sentinel tail
					for name, v := range map[string][]float64{"Xs": st.Xs[i*H : (i+1)*H], "H1": st.H1[i*2*I : (i+1)*2*I],
						"Act": st.Act[i*I : (i+1)*I], "H2": st.H2[i*H : (i+1)*H], "O": st.O[i*H : (i+1)*H], "DH2": st.DH2[i*H : (i+1)*H],
						"DAct": st.DAct[i*I : (i+1)*I], "DH1": st.DH1[i*2*I : (i+1)*2*I], "DXs": st.DXs[i*H : (i+1)*H], "DRW": st.DRW[i : i+1]} {
						for j, x := range v {
							if !isPosZero(x) {
								fail("sentinel-tail row %d: %s[%d] = %v, want +0", i, name, j, x)
							}
						}
					}
					continue
				}
				for h := 0; h < H; h++ {
					if st.O[i*H+h] != w*st.H2[i*H+h] || st.DH2[i*H+h] != w*st.DO[i*H+h] {
						fail("row %d col %d: O = %v, DH2 = %v, want rw·H2 = %v, rw·DO = %v", i, h, st.O[i*H+h], st.DH2[i*H+h], w*st.H2[i*H+h], w*st.DO[i*H+h])
					}
				}
				if isMag {
					continue
				}
				h1 := naiveH1(c, s)
				for j := range h1 {
					if d := math.Abs(h1[j] - st.H1[i*2*I+j]); d > 2*(gamma(H+1)+3*u64)*mag.Stages.H1[i*2*I+j] {
						fail("H1[%d,%d] = %v, naive %v", i, j, st.H1[i*2*I+j], h1[j])
					}
				}
				act, _ := naiveAct(c, st.H1[i*2*I:(i+1)*2*I])
				for j := range act {
					if d := math.Abs(act[j] - st.Act[i*I+j]); d > 16*u64*mag.Stages.Act[i*I+j] {
						fail("Act[%d,%d] = %v, naive activation of H1 %v", i, j, st.Act[i*I+j], act[j])
					}
				}
			}
			for tok := 0; tok < c.T; tok++ {
				for h := 0; h < H; h++ {
					var y, dx float64
					for k := 0; k < c.K; k++ {
						i := int(p.Inv[tok*c.K+k])
						y += st.O[i*H+h]
						dx += st.DXs[i*H+h]
					}
					if d := math.Abs(y - r.Y[tok*H+h]); d > 2*gamma(c.K)*mag.Y[tok*H+h] {
						fail("Y[%d,%d] = %v, Σ_k O = %v", tok, h, r.Y[tok*H+h], y)
					}
					if d := math.Abs(dx - r.DX[tok*H+h]); d > 2*gamma(c.K)*mag.DX[tok*H+h] {
						fail("DX[%d,%d] = %v, Σ_k DXs = %v", tok, h, r.DX[tok*H+h], dx)
					}
				}
			}
		}
	}
}
