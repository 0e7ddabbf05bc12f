package report

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"math"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/moecheck/moecheck/internal/nightly"
)

// Colors of the heatmap.
var (
	colUnknown = color.RGBA{0xd0, 0xd0, 0xd0, 0xff} // unconstrained (NaN ratio)
	colExact   = color.RGBA{0xff, 0xff, 0xff, 0xff} // ratio 0
	colBad     = color.RGBA{0x67, 0x00, 0x0d, 0xff} // +Inf: outside a zero-width bound or non-finite
	colNaN     = color.RGBA{0x00, 0x00, 0x00, 0xff} // non-finite (NaN map)
	colNaNFree = color.RGBA{0x9e, 0x9a, 0xc8, 0xff} // non-finite where the contract leaves the element unwritten (NaN map)
	colFinite  = color.RGBA{0xf4, 0xf4, 0xf4, 0xff} // finite (NaN map)
	colTail    = color.RGBA{0xd0, 0x00, 0xd0, 0xff} // sentinel tail frame
	colExpert  = color.RGBA{0x30, 0x30, 0x30, 0xff} // expert boundaries
)

// ratioColor maps an error/bound ratio to a color: log10 in [−3, 0] from light to full blue
// (within the bound), (0, 3] from orange to red (outside), beyond 10³ and +Inf dark red.
func ratioColor(q float32) color.RGBA {
	x := float64(q)
	switch {
	case math.IsNaN(x):
		return colUnknown
	case x == 0:
		return colExact
	case math.IsInf(x, 1):
		return colBad
	}
	l := math.Log10(x)
	if l <= 0 {
		t := (math.Max(l, -3) + 3) / 3 // 0 at 1e-3, 1 at the bound
		return mix(color.RGBA{0xde, 0xeb, 0xf7, 0xff}, color.RGBA{0x21, 0x66, 0xac, 0xff}, t)
	}
	if l > 3 {
		return colBad
	}
	return mix(color.RGBA{0xfd, 0xae, 0x61, 0xff}, color.RGBA{0xd7, 0x30, 0x27, 0xff}, l/3)
}

func mix(a, b color.RGBA, t float64) color.RGBA {
	f := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + t*(float64(y)-float64(x)))) }
	return color.RGBA{f(a.R, b.R), f(a.G, b.G), f(a.B, b.B), 0xff}
}

// grid renders cells to an image, nearest-neighbour upscaled so a small map stays crisp.
func grid(m *nightly.Map, cell func(i int) color.RGBA) *image.RGBA {
	sx := max(1, 800/max(m.Cols, 1))
	sy := max(1, 600/max(m.Rows, 1))
	sx, sy = min(sx, 64), min(sy, 64)
	img := image.NewRGBA(image.Rect(0, 0, m.Cols*sx, m.Rows*sy))
	for r := 0; r < m.Rows; r++ {
		for c := 0; c < m.Cols; c++ {
			col := cell(r*m.Cols + c)
			for y := r * sy; y < (r+1)*sy; y++ {
				for x := c * sx; x < (c+1)*sx; x++ {
					img.SetRGBA(x, y, col)
				}
			}
		}
	}
	return img
}

// swatch is a legend entry: a filled square.
type swatch struct{ c color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}}
	c.FillPolygon(s.c, pts)
	c.StrokeLines(draw.LineStyle{Color: color.Gray{0x80}, Width: vg.Points(0.5)}, append(pts, pts[0]))
}

// frame is a legend entry: an outlined square.
type frame struct{ c color.Color }

func (f frame) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Min.Y}}
	c.StrokeLines(draw.LineStyle{Color: f.c, Width: vg.Points(2)}, pts)
}

// geometry draws the map's image in tensor coordinates with row 0 at the top (y = rows −
// row), the expert boundaries and labels, and the sentinel tail frame.
func geometry(p *plot.Plot, m *nightly.Map, img image.Image, legend *[]entry) error {
	rows, cols := float64(m.TensorRows), float64(m.TensorCols)
	if rows == 0 || cols == 0 { // maps written before the tensor size was recorded
		rows, cols = float64(m.Rows*m.RowStep), float64(m.Cols*m.ColStep)
	}
	p.Add(plotter.NewImage(img, 0, 0, cols, rows))
	p.X.Min, p.X.Max = 0, cols
	p.Y.Min, p.Y.Max = 0, rows
	p.X.Label.Text = "column"
	p.Y.Label.Text = "sorted row"
	p.Y.Tick.Marker = cellTicks{n: rows, flip: true}
	p.X.Tick.Marker = cellTicks{n: cols}
	// expert boundaries: expert e owns rows [offsets[e−1], offsets[e])
	var labels plotter.XYLabels
	begin := 0
	label := len(m.Offsets) <= 64
	_, h := size(m)
	pxPerRow := float64(h-2.2*vg.Inch) * 96 / 72 / rows // data-area pixels per row at 96 dpi (a length is in points)
	for e, end := range m.Offsets {
		if int(end) > begin || e == len(m.Offsets)-1 {
			y := rows - float64(end)
			l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: y}, {X: cols, Y: y}})
			if err != nil {
				return err
			}
			l.LineStyle = draw.LineStyle{Color: colExpert, Width: vg.Points(0.8), Dashes: []vg.Length{vg.Points(3), vg.Points(2)}}
			p.Add(l)
		}
		if label && float64(int(end)-begin)*pxPerRow >= 11 { // room for a label
			labels.XYs = append(labels.XYs, plotter.XY{X: cols, Y: rows - (float64(begin)+float64(end))/2})
			labels.Labels = append(labels.Labels, fmt.Sprintf(" e%d", e))
		}
		begin = int(end)
	}
	// sentinel tail: rows [RealRows, S)
	if m.RealRows < int(rows) {
		y0, y1 := 0.0, rows-float64(m.RealRows)
		l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: y0}, {X: 0, Y: y1}, {X: cols, Y: y1}, {X: cols, Y: y0}, {X: 0, Y: y0}})
		if err != nil {
			return err
		}
		l.LineStyle = draw.LineStyle{Color: colTail, Width: vg.Points(2.5)}
		p.Add(l)
		labels.XYs = append(labels.XYs, plotter.XY{X: cols, Y: y1 / 2})
		labels.Labels = append(labels.Labels, fmt.Sprintf(" tail %d..%d", m.RealRows, int(rows)-1))
		*legend = append(*legend, entry{fmt.Sprintf("sentinel tail (rows %d..%d)", m.RealRows, int(rows)-1), frame{colTail}})
	}
	if len(labels.XYs) > 0 {
		lb, err := plotter.NewLabels(labels)
		if err != nil {
			return err
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].XAlign = draw.XLeft
			lb.TextStyle[i].YAlign = draw.YCenter
			lb.TextStyle[i].Font.Size = vg.Points(9)
		}
		p.Add(lb)
	}
	return nil
}

// entry is one legend line.
type entry struct {
	text  string
	thumb plot.Thumbnailer
}

// cellTicks labels an axis of n cells (rows or columns; cell i spans [i, i+1], or with flip
// [n−i−1, n−i], row 0 at the top) with whole indices only: every cell at its centre when
// there are few, otherwise round indices at their cell's start.
type cellTicks struct {
	n    float64
	flip bool
}

func (t cellTicks) Ticks(min, max float64) []plot.Tick {
	pos := func(i float64) float64 {
		if t.flip {
			return t.n - i
		}
		return i
	}
	var out []plot.Tick
	if t.n <= 16 {
		for i := 0.0; i < t.n; i++ {
			out = append(out, plot.Tick{Value: pos(i) + map[bool]float64{true: -0.5, false: 0.5}[t.flip], Label: fmt.Sprint(int(i))})
		}
		return out
	}
	lo, hi := min, max
	if t.flip {
		lo, hi = t.n-max, t.n-min
	}
	for _, tk := range (plot.DefaultTicks{}).Ticks(lo, hi) {
		if tk.Value != math.Trunc(tk.Value) || tk.Value >= t.n {
			continue
		}
		if tk.Label != "" {
			tk.Label = fmt.Sprint(int(tk.Value))
		}
		tk.Value = pos(tk.Value)
		out = append(out, tk)
	}
	return out
}

// size picks the canvas size from the map's aspect.
func size(m *nightly.Map) (vg.Length, vg.Length) {
	w := 9 * vg.Inch
	h := vg.Length(float64(m.Rows)/float64(max(m.Cols, 1))) * 7 * vg.Inch
	return w, min(max(h, 5*vg.Inch), 9*vg.Inch) + 0.9*vg.Inch // + the legend
}

// plotArea is how much of the canvas (width, height, legend excluded) the plot takes: all of
// it, except that a map of few cells draws cells of at most half an inch instead of one
// giant square, centred.
func plotArea(m *nightly.Map, w, h vg.Length) (vg.Length, vg.Length) {
	const maxCell, axes = 0.5 * vg.Inch, 1.6 * vg.Inch // axes: labels, ticks, title, expert labels
	return min(w, vg.Length(max(m.Cols, 1))*maxCell+axes+0.8*vg.Inch), min(h, vg.Length(max(m.Rows, 1))*maxCell+axes)
}

// render draws the plot with room on the right for the expert labels and the legend in two
// columns below.
func render(p *plot.Plot, m *nightly.Map, legend []entry) ([]byte, error) {
	w, h := size(m)
	c := vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(96))}
	dc := draw.New(c)
	const legendH = 0.9 * vg.Inch
	pw, ph := plotArea(m, w-1.2*vg.Inch, h-legendH)
	padX, padY := (w-1.2*vg.Inch-pw)/2, (h-legendH-ph)/2
	p.Draw(draw.Crop(dc, padX, -1.2*vg.Inch-padX, legendH+padY, -padY))
	half := (len(legend) + 1) / 2
	for i, part := range [][]entry{legend[:half], legend[half:]} {
		l := plot.NewLegend()
		l.TextStyle.Font.Size = vg.Points(10)
		l.Left, l.Top = true, true
		l.ThumbnailWidth = vg.Points(14)
		for _, e := range part {
			l.Add(e.text, e.thumb)
		}
		x0 := 0.7*vg.Inch + vg.Length(i)*(w-0.7*vg.Inch)/2
		l.Draw(draw.Crop(dc, x0, -(w - x0 - (w-0.7*vg.Inch)/2), 0.05*vg.Inch, -(h - legendH + 0.1*vg.Inch)))
	}
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("report: png: %w", err)
	}
	return b.Bytes(), nil
}

// Heatmap renders the error/bound map of m as a PNG.
func Heatmap(m *nightly.Map, title string) ([]byte, error) {
	ratio, _, err := m.Decode()
	if err != nil {
		return nil, err
	}
	p := plot.New()
	p.Title.Text = title
	step := ""
	if m.RowStep > 1 || m.ColStep > 1 {
		step = fmt.Sprintf(", cells of %d×%d elements (max)", m.RowStep, m.ColStep)
	}
	p.Title.Text += fmt.Sprintf("\n%s: |got − center| / bound per element, %d failing%s", m.Tensor, m.Failed, step)
	var legend []entry
	if err := geometry(p, m, grid(m, func(i int) color.RGBA { return ratioColor(ratio[i]) }), &legend); err != nil {
		return nil, err
	}
	legend = append(legend, entry{"exact (bitwise)", swatch{colExact}}, entry{"within bound (ratio 0.001..1)", swatch{ratioColor(0.1)}},
		entry{"outside bound (ratio 1..1000)", swatch{ratioColor(30)}}, entry{"outside a zero-width bound, or non-finite", swatch{colBad}},
		entry{"unconstrained (unwritten by contract)", swatch{colUnknown}})
	return render(p, m, legend)
}

// NaNMap renders the non-finite elements of m as a PNG.
func NaNMap(m *nightly.Map, title string) ([]byte, error) {
	ratio, nonFinite, err := m.Decode()
	if err != nil {
		return nil, err
	}
	p := plot.New()
	p.Title.Text = title + fmt.Sprintf("\n%s: %d non-finite element(s)", m.Tensor, m.NonFinite)
	if len(m.Signatures) > 0 {
		var s []string
		for b, n := range m.Signatures {
			s = append(s, fmt.Sprintf("%s ×%d", b, n))
		}
		sort.Strings(s)
		p.Title.Text += "; poison survived from " + strings.Join(s, ", ")
	}
	var legend []entry
	if err := geometry(p, m, grid(m, func(i int) color.RGBA {
		switch {
		case nonFinite[i] && math.IsNaN(float64(ratio[i])):
			return colNaNFree // unconstrained: the contract leaves it unwritten (a tail stage)
		case nonFinite[i]:
			return colNaN
		}
		return colFinite
	}), &legend); err != nil {
		return nil, err
	}
	legend = append(legend, entry{"NaN / ±Inf where a value is due", swatch{colNaN}},
		entry{"NaN / ±Inf where the contract leaves the element unwritten (allowed)", swatch{colNaNFree}}, entry{"finite", swatch{colFinite}})
	return render(p, m, legend)
}
