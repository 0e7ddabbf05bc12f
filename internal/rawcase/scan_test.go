package rawcase

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/moecheck/moecheck/moe"
)

// naiveFirst is firstNonFinite by decoding every value.
func naiveFirst(d moe.DType, b []byte) int {
	for i := range len(b) / (d.Bits() / 8) {
		x := value(d, b, i)
		if x != x || x > d.MaxFinite() || x < -d.MaxFinite() {
			return i
		}
	}
	return -1
}

// firstNonFinite finds the first NaN or ±Inf wherever it lies (every lane of a word, the
// tail, ranges split over the cores), and nothing in finite data with every exponent.
func TestFirstNonFinite(t *testing.T) {
	for _, d := range moe.DTypes() {
		w := d.Bits() / 8
		for _, n := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 17, 1 << 18} {
			rng := moe.NewRand(uint64(n) + 7)
			b := make([]byte, n*w)
			for i := range n { // finite patterns: exponent field below all ones
				u := uint32(rng.Uint64())
				if nonFinite(d, u&(1<<d.Bits()-1)) {
					u ^= 1 << (d.Bits() - 2) // clear the top exponent bit
				}
				if w == 2 {
					binary.LittleEndian.PutUint16(b[2*i:], uint16(u))
				} else {
					binary.LittleEndian.PutUint32(b[4*i:], u)
				}
			}
			if got := firstNonFinite(d, b); got != -1 {
				t.Fatalf("%s n=%d finite: got %d", d, n, got)
			}
			for trial := range min(n, 40) {
				c := append([]byte(nil), b...)
				at := []int{rng.IntN(n), trial, n - 1 - trial}
				for _, i := range at[:1+trial%3] {
					if i < 0 || i >= n {
						continue
					}
					p := patterns(d)[rng.IntN(5)] // the non-finite ones
					if w == 2 {
						binary.LittleEndian.PutUint16(c[2*i:], uint16(p))
					} else {
						binary.LittleEndian.PutUint32(c[4*i:], p)
					}
				}
				if got, want := firstNonFinite(d, c), naiveFirst(d, c); got != want {
					t.Fatalf("%s", fmt.Sprintf("%s n=%d trial %d: got %d, want %d", d, n, trial, got, want))
				}
			}
		}
	}
}
