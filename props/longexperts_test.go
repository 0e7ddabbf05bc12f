package props

import (
	"testing"
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

func TestLongExpertFrequency(t *testing.T) {
	n := 4000
	if testing.Short() {
		n = 1000
	}
	o128, o256, w := longExpertStats(t, 1, n)
	t.Logf("LongExperts: %d cases of seed 1: %.1f%% with an expert > 128 rows, %.1f%% > 256 rows; mean T·K·H·I %.0f", n, 100*o128, 100*o256, w)
}
