package simtorch

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// TestGEMMGathers: groupedMM (dgrad included) and wgrad give, bit for bit, what their
// definition gives: each output the dot product of its row of one operand and its column of
// the other, gathered element by element (the kernels gather each column once instead), on
// data with NaNs, infinities and zeros and outputs that start NaN-poisoned.
func TestGEMMGathers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	vals := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			switch rng.IntN(16) {
			case 0:
				v[i] = math.Float32frombits(0x7FC00000 | uint32(rng.IntN(64))<<16 | uint32(rng.IntN(2))<<31)
			case 1:
				v[i] = float32(math.Inf(1 - 2*rng.IntN(2)))
			case 2:
				v[i] = 0
			default:
				v[i] = float32(rng.NormFloat64())
			}
		}
		return v
	}
	poisoned := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(math.NaN())
		}
		return v
	}
	same := func(name string, got, want []float32) {
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: element %d = %#x, want %#x", name, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
			}
		}
	}
	for it := 0; it < 300; it++ {
		d := moe.DTypes()[it%3]
		r := &run{d: d}
		rows, n, k := 1+rng.IntN(12), 1+rng.IntN(20), 1+rng.IntN(20)
		b := rng.IntN(3)
		end := b + rows
		in := vals((end + 2) * k)
		name := fmt.Sprintf("case-%d/%s/m=%d/n=%d/k=%d", it, d, rows, n, k)
		for _, dgrad := range []bool{false, true} {
			w := vals(n * k)
			var bias []float32
			if it%2 == 0 {
				bias = vals(n)
			}
			got, want := poisoned((end+2)*n), poisoned((end+2)*n)
			r.groupedMM(got, n, in, k, w, b, end, dgrad, bias)
			col := make([]float32, k)
			for i := b; i < end; i++ {
				for j := 0; j < n; j++ {
					for q := 0; q < k; q++ {
						if dgrad {
							col[q] = w[q*n+j]
						} else {
							col[q] = w[j*k+q]
						}
					}
					acc := dot(in[i*k:(i+1)*k], col, rows)
					if bias != nil {
						acc += bias[j]
					}
					want[i*n+j] = r.round(acc)
				}
			}
			same(fmt.Sprintf("%s/groupedMM/dgrad=%v", name, dgrad), got, want)
		}
		nOut, nIn := n, k
		dout, x := vals((end+1)*nOut), vals((end+1)*nIn)
		got, want := poisoned(nOut*nIn), poisoned(nOut*nIn)
		r.wgrad(got, dout, nOut, x, nIn, b, end)
		xs, ys := make([]float32, rows), make([]float32, rows)
		for o := 0; o < nOut; o++ {
			for l := 0; l < nIn; l++ {
				for q := 0; q < rows; q++ {
					xs[q], ys[q] = dout[(b+q)*nOut+o], x[(b+q)*nIn+l]
				}
				want[o*nIn+l] = r.round(dot(xs, ys, rows))
			}
		}
		same(name+"/wgrad", got, want)
		r.wgrad(got, dout, nOut, x, nIn, b, b) // no rows: exact zeros
		same(name+"/wgrad/empty", got, make([]float32, nOut*nIn))
	}
}
