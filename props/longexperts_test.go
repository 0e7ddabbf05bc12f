package props

import (
	"context"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/moe"
)

// longExpertStats measures, over n cases of the default stream, the fraction with an
// expert of more than 128 and of more than 256 rows, and the mean work T·K·H·I.
func longExpertStats(t testing.TB, seed uint64, n int) (over128, over256, work float64) {
	t.Helper()
	for i := 0; i < n; i++ {
		s, _ := SpecAt(seed, i, GenOptions{})
		c, err := s.Build()
		if err != nil {
			t.Fatalf("LongExperts: case %d: %v", i, err)
		}
		p, err := c.Plan()
		if err != nil {
			t.Fatalf("LongExperts: case %d: %v", i, err)
		}
		m := 0
		for e := 0; e < c.E; e++ {
			m = max(m, p.End(e)-p.Begin(e))
		}
		if m > 128 {
			over128++
		}
		if m > 256 {
			over256++
		}
		work += float64(c.T * c.K * c.H * c.I)
	}
	return over128 / float64(n), over256 / float64(n), work / float64(n)
}

// longBug is gpu/sim with a weight-gradient tile-loop bug: for an expert with more than 128
// rows (past the first row tile) one dW1 element of that expert is wrong.
type longBug struct{ gpu.Backend }

func (b longBug) Run(ctx context.Context, c *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	r, err := b.Backend.Run(ctx, c, o)
	if err != nil {
		return r, err
	}
	p, err := c.Plan()
	if err != nil {
		return r, err
	}
	for e := 0; e < c.E; e++ {
		if p.End(e)-p.Begin(e) > 128 {
			i := e * 2 * c.I * c.H
			r.DW1[i] = 2*r.DW1[i] + 1
		}
	}
	return r, nil
}

// TestLongExpertFrequency: the default generator gives an expert of more than 128 rows, and
// one of more than 256, in more than 10% of cases, so that the default 100-case budget
// catches a bug of the weight gradients' row-tile loop in every one of 20 seeds (a miss per
// seed has probability below 0.9^100 ≈ 3·10⁻⁵; with the generator before, 2.5% of cases had
// such an expert and about 8% of 100-case runs missed it).
func TestLongExpertFrequency(t *testing.T) {
	n := 4000
	if testing.Short() {
		n = 1000
	}
	o128, o256, w := longExpertStats(t, 1, n)
	t.Logf("LongExperts: %d cases of seed 1: %.1f%% with an expert > 128 rows, %.1f%% > 256 rows; mean T·K·H·I %.0f", n, 100*o128, 100*o256, w)
	if o128 < 0.10 || o256 < 0.10 {
		t.Errorf("LongExperts: %.1f%% > 128 rows, %.1f%% > 256 rows; want both above 10%%", 100*o128, 100*o256)
	}
	matches, err := ByName("matches")
	if err != nil {
		t.Fatal(err)
	}
	missed := 0
	for seed := uint64(1); seed <= 20; seed++ {
		env := &Env{Backend: longBug{sim.New(sim.Options{})}}
		rep, err := Run(context.Background(), RunConfig{Env: env, Properties: []Property{matches}, Seed: seed, NoShrink: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Failures) == 0 {
			missed++
		}
	}
	if missed > 0 {
		t.Errorf("LongExperts: the tile-loop bug passed %d of 20 default 100-case runs", missed)
	}
}
