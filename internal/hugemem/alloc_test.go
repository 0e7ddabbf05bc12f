package hugemem

import "testing"

func TestInterior(t *testing.T) {
	const M = hugePage
	for _, tc := range []struct {
		name         string
		p            uintptr
		n            int
		wantLo, want uintptr
	}{
		{"aligned/whole", 4 * M, 2 * M, 4 * M, 6 * M},
		{"unaligned/inner", 4*M + 1, 3 * M, 5 * M, 7 * M},
		{"unaligned/short", 4*M + 1, M, 5 * M, 5 * M},
		{"tiny", 4*M + 100, 10, 5 * M, 5 * M},
	} {
		lo, hi := interior(tc.p, tc.n)
		if lo != tc.wantLo || hi != tc.want {
			t.Errorf("%s: interior(%#x, %d) = [%#x, %#x), want [%#x, %#x)", tc.name, tc.p, tc.n, lo, hi, tc.wantLo, tc.want)
		}
		if hi < lo || lo < tc.p || hi > tc.p+uintptr(tc.n) && hi != lo {
			t.Errorf("%s: [%#x, %#x) not inside the slice", tc.name, lo, hi)
		}
	}
}

// The slices are make's: the right length, zero, writable, below and above Threshold.
func TestSlicesAreMakes(t *testing.T) {
	for _, n := range []int{0, 1, Threshold/8 - 1, Threshold / 8, Threshold/8 + 12345} {
		b, f, d := Bytes(8*n), Float32s(2*n), Float64s(n)
		if len(b) != 8*n || len(f) != 2*n || len(d) != n {
			t.Fatalf("n=%d: lengths %d %d %d", n, len(b), len(f), len(d))
		}
		for i := 0; i < n; i += 4099 {
			if b[8*i] != 0 || f[2*i] != 0 || d[i] != 0 {
				t.Fatalf("n=%d: element %d not zero", n, i)
			}
			b[8*i], f[2*i], d[i] = 1, 2, 3
		}
		if n > 0 && (b[0] != 1 || f[0] != 2 || d[0] != 3) {
			t.Fatalf("n=%d: writes lost", n)
		}
	}

}
