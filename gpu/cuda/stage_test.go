package cuda

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/gpu"
)

func TestPlanStaging(t *testing.T) {
	for _, tc := range []struct {
		name  string
		head  int64
		sizes []int64
	}{
		{"small: all staged", 200, []int64{1, 16, 17, 0, 4096, 3}},
		{"mixed: big ones direct", 8, []int64{stageMax, stageMax + 1, 5, 3 * stageMax, 31}},
		{"empty", 64, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planStaging(tc.head, tc.sizes)
			if err != nil {
				t.Fatal(err)
			}
			type span struct{ lo, hi int64 }
			spans := []span{{0, tc.head}}
			for i, n := range tc.sizes {
				off := p.Off[i]
				if off%stageAlign != 0 {
					t.Errorf("item %d at %d: not %d-byte aligned", i, off, stageAlign)
				}
				if p.Staged[i] != (n <= stageMax) {
					t.Errorf("item %d (%d bytes): staged %v", i, n, p.Staged[i])
				}
				if p.Staged[i] && off+n > p.Dev {
					t.Errorf("staged item %d [%d, %d) beyond the device staging (%d)", i, off, off+n, p.Dev)
				}
				if !p.Staged[i] && off < p.Dev {
					t.Errorf("direct item %d at %d inside the device staging (%d)", i, off, p.Dev)
				}
				if off+n > p.Host {
					t.Errorf("item %d [%d, %d) beyond the host buffer (%d)", i, off, off+n, p.Host)
				}
				spans = append(spans, span{off, off + n})
			}
			for i := range spans {
				for j := range i {
					a, b := spans[i], spans[j]
					if a.lo < b.hi && b.lo < a.hi {
						t.Errorf("overlap: [%d, %d) and [%d, %d)", a.lo, a.hi, b.lo, b.hi)
					}
				}
			}
		})
	}
}

func TestPlanStagingRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		head  int64
		sizes []int64
		want  string
	}{
		{"negative item", 0, []int64{4, -1}, "item 1 of -1 bytes"},
		{"absurd item", 0, []int64{maxStaging + 1}, "want between 0 and"},
		{"absurd total", 0, []int64{maxStaging, maxStaging}, "exceeds"},
		{"negative head", -5, nil, "head of -5 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := planStaging(tc.head, tc.sizes)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// kernelVisits models prepare_bufs's indexing (kernels/elementwise.cu): each block finds its
// descriptor by binary search over the first blocks, then strides over the descriptor's
// units with the threads of the descriptor's blocks. It returns how often each unit of each
// descriptor is visited.
func kernelVisits(enc []byte, nd int, grid int64, units []int64) [][]int {
	word := func(d, j int) uint64 { return binary.LittleEndian.Uint64(enc[d*descBytes+8*j:]) }
	visits := make([][]int, nd)
	for d := range visits {
		visits[d] = make([]int, units[d])
	}
	for bx := uint64(0); bx < uint64(grid); bx++ {
		lo, hi := 0, nd-1
		for lo < hi {
			m := (lo + hi + 1) >> 1
			if word(m, 7) <= bx {
				lo = m
			} else {
				hi = m - 1
			}
		}
		first := word(lo, 7)
		end := uint64(grid)
		if lo+1 < nd {
			end = word(lo+1, 7)
		}
		stride := int64(end-first) * prepThreads
		for th := int64(0); th < prepThreads; th++ {
			for u := int64(bx-first)*prepThreads + th; u < units[lo]; u += stride {
				visits[lo][u]++
			}
		}
	}
	return visits
}

func TestEncodeDescsCoversEveryUnitOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 20; trial++ {
		nd := 1 + rng.IntN(40)
		ds := make([]prepDesc, nd)
		for i := range ds {
			d := prepDesc{op: uint64(rng.IntN(6)), dst: uint64(rng.Uint32()) &^ 15, src: uint64(rng.Uint32()) &^ 15,
				dt: int64(rng.IntN(3)), buf: int64(rng.IntN(17))}
			switch d.op {
			case opGuard, opCheck:
				d.n, d.arg = int64(rng.IntN(100)), guardBytes
			default:
				d.n = int64(rng.IntN(1 << uint(rng.IntN(22))))
				d.arg = int64(rng.IntN(256))
			}
			ds[i] = d
		}
		enc := make([]byte, nd*descBytes)
		grid, err := encodeDescs(enc, ds)
		if err != nil {
			t.Fatal(err)
		}
		units := make([]int64, nd)
		var sum int64
		for i, d := range ds {
			units[i] = d.units()
			sum += d.blocks()
			w := func(j int) uint64 { return binary.LittleEndian.Uint64(enc[i*descBytes+8*j:]) }
			if w(0) != d.op || w(1) != d.dst || w(2) != d.src || int64(w(3)) != d.n || int64(w(4)) != d.dt ||
				int64(w(5)) != d.arg || int64(w(6)) != d.buf {
				t.Fatalf("descriptor %d encoded as %x, want %+v", i, enc[i*descBytes:(i+1)*descBytes], d)
			}
		}
		if grid != sum {
			t.Fatalf("grid %d blocks, want the sum %d", grid, sum)
		}
		for d, v := range kernelVisits(enc, nd, grid, units) {
			for u, n := range v {
				if n != 1 {
					t.Fatalf("trial %d: descriptor %d (op %d, %d units) unit %d visited %d times", trial, d, ds[d].op, units[d], u, n)
				}
			}
		}
	}
}

func TestDescUnits(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    prepDesc
		want int64
	}{
		{"copy: 16-byte vectors, tail in one more", prepDesc{op: opCopy, n: 33}, 3},
		{"fill: exact vectors", prepDesc{op: opFill, n: 32}, 2},
		{"fill: empty", prepDesc{op: opFill, n: 0}, 0},
		{"poison: elements", prepDesc{op: opPoison, n: 1000}, 1000},
		{"stale: elements", prepDesc{op: opStale, n: 7}, 7},
		{"guard: zone bytes", prepDesc{op: opGuard, n: 80, arg: guardBytes}, 80 * guardBytes},
		{"check: zone bytes", prepDesc{op: opCheck, n: 3, arg: guardBytes}, 3 * guardBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.d.units(); got != tc.want {
				t.Errorf("units %d, want %d", got, tc.want)
			}
			if b := tc.d.blocks(); b < 1 || b > prepMaxBlocks {
				t.Errorf("blocks %d outside [1, %d]", b, prepMaxBlocks)
			}
		})
	}
}

func TestEncodeDescsRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  int
		ds   []prepDesc
		want string
	}{
		{"none", 0, nil, "0 prepare descriptors"},
		{"short buffer", 10, []prepDesc{{}}, "10 bytes for 1 descriptors"},
		{"negative size", 64, []prepDesc{{op: opFill, n: -1}}, "size -1"},
		{"too many", 0, make([]prepDesc, prepMaxDescs+1), "want between 1 and"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := encodeDescs(make([]byte, tc.out), tc.ds)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// guardByte must be the kernels' guard_byte: (unsigned char)(0xA5 ^ tag*29 ^ i*7).
func TestGuardByte(t *testing.T) {
	for _, tc := range []struct {
		tag  uint64
		i    int64
		want byte
	}{{0, 0, 0xA5}, {1, 0, 0xA5 ^ 29}, {0, 1, 0xA5 ^ 7}, {3, 12, byte(0xA5 ^ 87 ^ 84)}, {100, 255, byte((0xA5 ^ 2900 ^ 1785) & 0xff)}} {
		if got := guardByte(tc.tag, tc.i); got != tc.want {
			t.Errorf("guardByte(%d, %d) = %#x, want %#x", tc.tag, tc.i, got, tc.want)
		}
	}
}

func TestBufDesc(t *testing.T) {
	for _, tc := range []struct {
		name string
		buf  gpu.Buffer
		p    gpu.Poison
		kept bool
		want prepDesc
	}{
		{"internal: 0xFF bytes", 0, gpu.PoisonNaN, true, prepDesc{op: opFill, dst: 4096, n: 100, arg: 0xff}},
		{"nan: policy over the elements", gpu.BufH1, gpu.PoisonNaN, true, prepDesc{op: opPoison, dst: 4096, n: 50, dt: 1, arg: int64(gpu.PoisonNaN), buf: int64(gpu.BufH1)}},
		{"signature: buffer id", gpu.BufDX, gpu.PoisonSignature, false, prepDesc{op: opPoison, dst: 4096, n: 50, dt: 1, arg: int64(gpu.PoisonSignature), buf: int64(gpu.BufDX)}},
		{"stale kept: values fixed", gpu.BufY, gpu.PoisonStale, true, prepDesc{op: opStale, dst: 4096, n: 50, dt: 1, arg: int64(gpu.PoisonHuge), buf: int64(gpu.BufY)}},
		{"stale not kept: huge", gpu.BufY, gpu.PoisonStale, false, prepDesc{op: opPoison, dst: 4096, n: 50, dt: 1, arg: int64(gpu.PoisonHuge), buf: int64(gpu.BufY)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bufDesc(4096, 100, tc.buf, 1, 2, tc.p, tc.kept); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
