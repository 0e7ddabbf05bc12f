package reference_test

import (
	"math"
	"testing"

	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/reference"
)

// stagesOf lists a Result's stage tensors by name.
func stagesOf(r *reference.Result) map[string][]float64 {
	s := r.Stages
	return map[string][]float64{"Xs": s.Xs, "H1": s.H1, "Act": s.Act, "H2": s.H2, "O": s.O, "DO": s.DO, "DRW-stage": s.DRW,
		"DH2": s.DH2, "DAct": s.DAct, "DH1": s.DH1, "DXs": s.DXs}
}

func absAll(v []float64) {
	for i := range v {
		v[i] = math.Abs(v[i])
	}
}

// TestMagnitudeBounds checks that the magnitude pass bounds every output and stage of Run:
// |v̂| ≤ M̂·(1 + 2γ_n·P), the computed value being within γ_n·P·M of the exact one (see
// fd_test.go) and the computed magnitude within γ_n·M of the exact magnitude. It runs on the
// small cases and on larger ones in every data mode (Large reaches 2^31-scaled values).
func TestMagnitudeBounds(t *testing.T) {
	var cases []*moe.Case
	for seed := uint64(1); seed <= 200; seed++ {
		cases = append(cases, smallCase(t, seed))
	}
	for i, mode := range moe.DataModes() {
		cfg := moe.Config{T: 32, H: 16, I: 8, E: 4, K: 3, Act: moe.Activation(i % 2), Layout: moe.Layout(i / 2 % 2),
			DType: moe.BF16, Bias: true, EP: moe.EP{World: 2, Rank: i % 2}}
		cases = append(cases, casetest.CaseMode(t, cfg, uint64(i), mode))
	}
	for ci, c := range cases {
		res, err := reference.Run(c, reference.Options{Stages: true})
		if err != nil {
			t.Fatal(err)
		}
		mag, err := reference.Magnitude(c, reference.Options{Stages: true})
		if err != nil {
			t.Fatal(err)
		}
		k := 1 + 2*gamma(c.S()+c.T+c.H+2*c.I+c.K+16)*propagation(mag)
		got, bound := outputs(res), outputs(mag)
		for name, v := range stagesOf(res) {
			got[name], bound[name] = v, stagesOf(mag)[name]
		}
		for name, v := range got {
			for i, x := range v {
				if m := bound[name][i]; !(math.Abs(x) <= m*k) || m < 0 {
					t.Fatalf("case %d (%s): |%s[%d]| = %v exceeds its magnitude %v", ci, c.Config, name, i, math.Abs(x), m)
				}
			}
		}
	}
}

// TestMagnitudeExactOnNonNegative checks the magnitude pass's definition where it is
// checkable bitwise: with every input non-negative and SwiGLU, the terms of every forward
// sum are their own absolute values and silu(M_g)·M_u is the activation itself, so Run and
// Magnitude compute identical forward stages, Y, DRW, d_h2, d_act, DW2 and DB2. (The
// activation backward differs: Magnitude uses the envelope D(M_g) ≥ silu'(g).)
func TestMagnitudeExactOnNonNegative(t *testing.T) {
	for seed := uint64(1); seed <= 100; seed++ {
		c := smallCase(t, seed)
		if c.Act != moe.SwiGLU {
			continue
		}
		for _, v := range [][]float64{c.X, c.W1, c.W2, c.B1, c.B2, c.DY, c.Routing.Weights} {
			absAll(v)
		}
		if c.Global != nil {
			absAll(c.Global.Weights)
		}
		res, err := reference.Run(c, reference.Options{Stages: true})
		if err != nil {
			t.Fatal(err)
		}
		mag, err := reference.Magnitude(c, reference.Options{Stages: true})
		if err != nil {
			t.Fatal(err)
		}
		rs, ms := stagesOf(res), stagesOf(mag)
		ro, mo := outputs(res), outputs(mag)
		for _, name := range []string{"Xs", "H1", "Act", "H2", "O", "DO", "DRW-stage", "DH2", "DAct"} {
			if !bitwiseEqual(rs[name], ms[name]) {
				t.Fatalf("seed %d: stage %s differs between Run and Magnitude on non-negative data", seed, name)
			}
		}
		for _, name := range []string{"Y", "DRW", "DW2", "DB2"} {
			if !bitwiseEqual(ro[name], mo[name]) {
				t.Fatalf("seed %d: %s differs between Run and Magnitude on non-negative data", seed, name)
			}
		}
	}
}

// TestMagnitudeSignInvariant checks that the magnitude pass sees only absolute values:
// flipping the sign of any inputs leaves it bitwise unchanged.
func TestMagnitudeSignInvariant(t *testing.T) {
	for seed := uint64(1); seed <= 100; seed++ {
		c := smallCase(t, seed)
		c.Global = nil
		a, err := reference.Magnitude(c, reference.Options{Stages: true})
		if err != nil {
			t.Fatal(err)
		}
		rng := moe.NewRand(seed)
		for _, v := range [][]float64{c.X, c.W1, c.W2, c.B1, c.B2, c.DY, c.Routing.Weights} {
			for i := range v {
				if rng.IntN(2) == 0 {
					v[i] = -v[i]
				}
			}
		}
		b, err := reference.Magnitude(c, reference.Options{Stages: true})
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range outputs(a) {
			if !bitwiseEqual(v, outputs(b)[name]) {
				t.Fatalf("seed %d: flipping signs changed the magnitude of %s", seed, name)
			}
		}
		for name, v := range stagesOf(a) {
			if !bitwiseEqual(v, stagesOf(b)[name]) {
				t.Fatalf("seed %d: flipping signs changed the magnitude of stage %s", seed, name)
			}
		}
	}
}
