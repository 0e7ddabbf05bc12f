package oracle

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// colsMatNaive is colsMat as it was before the blocks: element by element over whole rows.
func colsMatNaive(v rowsrc, b, e, n int) mat {
	m := mat{n, e - b, make([]float64, n*(e-b)), make([]float64, n*(e-b))}
	for i := b; i < e; i++ {
		for j := 0; j < n; j++ {
			x := v.at(i*n + j)
			m.c[j*(e-b)+i-b] = x.v
			m.r[j*(e-b)+i-b] = x.e
		}
	}
	return m
}

// TestColsMatTiled: colsMat (in blocks of 256 rows × 8 columns) writes every center and radius
// with the bits of the element-by-element copy, for row ranges and row lengths on and off the
// block sizes
// (including one row, one column and an empty range), from the path's float32 values (±Inf
// and NaN among them: unknown) and from enclosures (NaN radii among them), into an arena
// whose dirty scratch holds NaN poison from the last use (so an element not written shows).
func TestColsMatTiled(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 20))
	en := &encl{ar: &arena{}}
	for _, sh := range [][3]int{{0, 1, 1}, {0, 32, 32}, {3, 40, 33}, {5, 5, 7}, {0, 70, 1}, {7, 8, 65}, {10, 139, 96}, {0, 256, 8}, {0, 257, 9}, {3, 600, 13}, {1, 520, 1}} {
		b, e, n := sh[0], sh[1], sh[2]
		rows := e + 2
		p := make([]float32, rows*n)
		v := ivec{make([]float64, rows*n), make([]float64, rows*n)}
		for i := range p {
			x := float32(rng.NormFloat64())
			switch rng.IntN(30) {
			case 0:
				x = float32(math.NaN())
			case 1:
				x = float32(math.Inf(1 - 2*rng.IntN(2)))
			case 2:
				x = float32(math.Copysign(0, -1))
			}
			p[i] = x
			v.c[i], v.r[i] = float64(x), math.Abs(float64(x))*0x1p-8
			if rng.IntN(40) == 0 {
				v.r[i] = math.NaN()
			}
		}
		for _, src := range []struct {
			name string
			s    rowsrc
		}{{"pt", ptsrc(p)}, {"iv", ivsrc(v)}} {
			name := fmt.Sprintf("%s/b=%d/e=%d/n=%d", src.name, b, e, n)
			en.ar.reset()
			poison := en.newMatDirty(n, e-b)
			for i := range poison.c {
				poison.c[i], poison.r[i] = math.NaN(), math.NaN()
			}
			en.ar.reset()
			got, want := en.colsMat(src.s, b, e, n), colsMatNaive(src.s, b, e, n)
			if got.m != want.m || got.k != want.k || len(got.c) != len(want.c) || len(got.r) != len(want.r) {
				t.Fatalf("%s: shape %d×%d (%d, %d), want %d×%d (%d, %d)", name, got.m, got.k, len(got.c), len(got.r), want.m, want.k, len(want.c), len(want.r))
			}
			for i := range want.c {
				if math.Float64bits(got.c[i]) != math.Float64bits(want.c[i]) || math.Float64bits(got.r[i]) != math.Float64bits(want.r[i]) {
					t.Fatalf("%s: element %d: got %v±%v, want %v±%v", name, i, got.c[i], got.r[i], want.c[i], want.r[i])
				}
			}
		}
	}
}

// BenchmarkColsMat: colsMat on one expert's weight-gradient operands of a Qwen3-30B-A3B EP-8
// rank (rows × 2I = 1536, rows × H = 2048; 256 and 1,024 rows per expert) from the path's
// float32 values, as the wgrad stage checks call it; ns/element.
func BenchmarkColsMat(b *testing.B) {
	for _, sh := range [][2]int{{256, 1536}, {256, 2048}, {1024, 2048}} {
		rows, n := sh[0], sh[1]
		b.Run(fmt.Sprintf("rows=%d/n=%d", rows, n), func(b *testing.B) {
			p := make([]float32, rows*n)
			for i := range p {
				p[i] = float32(i)
			}
			en := &encl{ar: &arena{}}
			for b.Loop() {
				en.ar.reset()
				en.colsMat(ptsrc(p), 0, rows, n)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(rows*n), "ns/element")
		})
	}
}

// TestTransposeExactBlocks: transposeExact (in blocks of 64 rows × 8 columns) writes every
// center of the transpose with the bits of x's element (signed zeros, NaN payloads, ±Inf
// and subnormals among them) and takes its radii from the workspace's read-only zeros, for
// shapes on and off the block sizes, into an arena whose dirty scratch holds NaN poison
// from the last use (so an element not written shows).
func TestTransposeExactBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 21))
	en := &encl{ar: &arena{}, ws: &workspace{}}
	for _, sh := range [][2]int{{1, 1}, {64, 8}, {65, 9}, {3, 200}, {200, 3}, {130, 17}, {7, 1}, {1, 7}, {300, 40}} {
		m, k := sh[0], sh[1]
		x := make([]float64, m*k)
		for i := range x {
			switch rng.IntN(20) {
			case 0:
				x[i] = math.Float64frombits(0x7ff8000000000000 | uint64(rng.IntN(1<<20)))
			case 1:
				x[i] = math.Inf(1 - 2*rng.IntN(2))
			case 2:
				x[i] = math.Copysign(0, -1)
			case 3:
				x[i] = 0x1p-1070 * float64(rng.IntN(8))
			default:
				x[i] = rng.NormFloat64()
			}
		}
		name := fmt.Sprintf("m=%d/k=%d", m, k)
		en.ar.reset()
		poison := en.ar.getDirty(m * k)
		for i := range poison {
			poison[i] = math.NaN()
		}
		en.ar.reset()
		tr := en.transposeExact(x, m, k)
		if tr.m != k || tr.k != m || len(tr.c) != m*k || len(tr.r) != m*k {
			t.Fatalf("%s: shape %d×%d (%d, %d), want %d×%d", name, tr.m, tr.k, len(tr.c), len(tr.r), k, m)
		}
		for i := 0; i < m; i++ {
			for l := 0; l < k; l++ {
				if got, want := math.Float64bits(tr.c[l*m+i]), math.Float64bits(x[i*k+l]); got != want {
					t.Fatalf("%s: element (%d, %d) of the transpose: bits %#x, want %#x", name, l, i, got, want)
				}
				if r := math.Float64bits(tr.r[l*m+i]); r != 0 {
					t.Fatalf("%s: radius (%d, %d) bits %#x, want +0", name, l, i, r)
				}
			}
		}
	}
}
