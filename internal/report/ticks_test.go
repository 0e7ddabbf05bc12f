package report

import (
	"math"
	"strconv"
	"testing"

	"gonum.org/v1/plot/vg"

	"github.com/moecheck/moecheck/internal/nightly"
)

// TestCellTicks: axis ticks name whole rows and columns only (a shrunk 1×1 case used to get
// fractional ticks), each small axis labelled at every cell's centre.
func TestCellTicks(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    float64
		flip bool
	}{{"cols=1", 1, false}, {"rows=1", 1, true}, {"cols=7", 7, false}, {"rows=300", 300, true}, {"cols=2048", 2048, false}} {
		ticks := cellTicks{n: tc.n, flip: tc.flip}.Ticks(0, tc.n)
		if len(ticks) == 0 {
			t.Fatalf("%s: no ticks", tc.name)
		}
		for _, tk := range ticks {
			if tk.Label == "" {
				continue
			}
			i, err := strconv.Atoi(tk.Label)
			if err != nil || i < 0 || float64(i) >= tc.n {
				t.Errorf("%s: tick label %q is not a cell index", tc.name, tk.Label)
			}
			if tc.n <= 16 && math.Abs(tk.Value-math.Trunc(tk.Value)-0.5) > 1e-9 {
				t.Errorf("%s: tick %q at %g, want a cell centre", tc.name, tk.Label, tk.Value)
			}
		}
	}
}

// TestSmallMapArea: a 1×1 map is drawn in a small area of the canvas, not as a full-page
// square.
func TestSmallMapArea(t *testing.T) {
	m := &nightly.Map{Rows: 1, Cols: 1}
	w, h := size(m)
	pw, ph := plotArea(m, w, h)
	if pw > 3*vg.Inch || ph > 3*vg.Inch {
		t.Errorf("1×1 map drawn in %v × %v of a %v × %v canvas", pw, ph, w, h)
	}
	big := &nightly.Map{Rows: 300, Cols: 2048}
	w, h = size(big)
	if pw, ph := plotArea(big, w, h); pw != w || ph != h {
		t.Errorf("a large map is drawn in %v × %v of a %v × %v canvas, want all of it", pw, ph, w, h)
	}
}
