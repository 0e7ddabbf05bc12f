package moe

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestPCGJump: pcgJump(s, n) is the state after n Uint64 calls of a PCG in state s, for every
// n up to 300 and a long run, from several states; jumps compose for large n.
func TestPCGJump(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hi, lo uint64
	}{{"zero", 0, 0}, {"seed1", 1, 1 ^ 0x9e3779b97f4a7c15}, {"ones", math.MaxUint64, math.MaxUint64}, {"mixed", 0x0123456789abcdef, 0xfedcba9876543210}} {
		p := rand.NewPCG(tc.hi, tc.lo)
		s0, ok := pcgState(p)
		if !ok || s0 != (u128{tc.hi, tc.lo}) {
			t.Fatalf("%s: pcgState(NewPCG(%#x, %#x)) = %v, %v; want the seeds", tc.name, tc.hi, tc.lo, s0, ok)
		}
		if !pcgSteps(s0) {
			t.Fatalf("%s: pcgSteps is false: math/rand/v2's PCG no longer steps as pcgJump models", tc.name)
		}
		for n := uint64(0); n <= 100300; n++ {
			if n <= 300 || n == 100300 {
				s, _ := pcgState(p)
				if j := pcgJump(s0, n); j != s {
					t.Fatalf("%s: pcgJump(s, %d) = %v, want %v (stepped)", tc.name, n, j, s)
				}
			}
			p.Uint64()
		}
		r := rand.New(rand.NewPCG(tc.hi^1, tc.lo))
		for range 100 {
			a, b := r.Uint64()>>1, r.Uint64()>>1 // a+b does not wrap
			if x, y := pcgJump(pcgJump(s0, a), b), pcgJump(s0, a+b); x != y {
				t.Fatalf("%s: jump %d then %d = %v, jump %d = %v", tc.name, a, b, x, a+b, y)
			}
		}
	}
}

// serialStarts decodes n normal values from a PCG in state s as the serial loop does and
// returns the word position at which each value starts, and the position after the last.
func serialStarts(s u128, n int) (starts []uint64, end uint64) {
	d := newNormDecoder(s, 0)
	starts = make([]uint64, n)
	for i := range starts {
		starts[i] = d.src.pos
		d.rng.NormFloat64()
	}
	return starts, d.src.pos
}

// TestNormStreamSameAsSerial: normStream gives the serial loop's values bit for bit and leaves
// the PCG where the serial loop does (the next draws are equal), over many seeds, sizes and
// splits, chunks as small as one word so that chunk ends fall inside multi-word values and
// whole chunks inside one value. It also counts those cases, so the test cannot pass
// without exercising the fix-up.
func TestNormStreamSameAsSerial(t *testing.T) {
	inside, covered := 0, 0 // chunk starts inside a multi-word value; chunks with no value start
	for _, sp := range []streamSplit{
		{workers: 2, chunk: 1, min: 1},
		{workers: 4, chunk: 2, min: 1},
		{workers: 3, chunk: 3, min: 1},
		{workers: 4, chunk: 7, min: 5},
		{workers: 4, chunk: 64, min: 1},
		{workers: 5, chunk: 65, min: 1},
		{workers: 4, chunk: 1000, min: 100},
		{workers: 1, chunk: 7, min: 1},       // serial
		{workers: 4, chunk: 7, min: 1 << 30}, // below min: serial
	} {
		for _, n := range []int{0, 1, 2, 3, 5, 63, 64, 65, 1000, 10007, 100000} {
			for seed := uint64(0); seed < 12; seed++ {
				name := fmt.Sprintf("workers=%d/chunk=%d/min=%d/n=%d/seed=%d", sp.workers, sp.chunk, sp.min, n, seed)
				if n > 1000 && seed > 3 {
					continue
				}
				want := make([]float64, n)
				ps := newPCG(seed)
				rs := rand.New(ps)
				std := 1 / math.Sqrt(float64(seed+1))
				for i := range want {
					want[i] = rs.NormFloat64() * std
				}
				got := make([]float64, n)
				for i := range got {
					got[i] = math.NaN()
				}
				p := newPCG(seed)
				if err := normStream(p, got, std, sp); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for i := range got {
					if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
						t.Fatalf("%s: v[%d] = %v, want %v", name, i, got[i], want[i])
					}
				}
				for k := range 3 {
					if g, w := p.Uint64(), ps.Uint64(); g != w {
						t.Fatalf("%s: draw %d after the stream = %#x, want %#x", name, k, g, w)
					}
				}
				if sp.chunk <= 3 && n >= 1000 {
					s, _ := pcgState(newPCG(seed))
					starts, end := serialStarts(s, n)
					in, cov := boundaryCases(starts, end, uint64(sp.chunk))
					inside += in
					covered += cov
				}
			}
		}
	}
	if inside == 0 || covered == 0 {
		t.Fatalf("chunk starts inside a multi-word value: %d, chunks holding no value start: %d; want both > 0 (the fix-up untested)", inside, covered)
	}
	t.Logf("first batches: %d chunk starts inside a multi-word value, %d chunks inside one value", inside, covered)
}

// boundaryCases counts, for chunks of L words over the values' words [0, end), the chunk
// starts that fall inside a multi-word value and the chunks in which no value starts (both
// in the first batch, which covers len(starts) words).
func boundaryCases(starts []uint64, end, L uint64) (inside, covered int) {
	words := uint64(len(starts))
	isStart := make(map[uint64]bool, len(starts))
	for _, s := range starts {
		isStart[s] = true
	}
	for a := L; a < words && a < end; a += L {
		if !isStart[a] {
			inside++
			any := false
			for w := a; w < min(a+L, words); w++ {
				any = any || isStart[w]
			}
			if !any {
				covered++
			}
		}
	}
	return inside, covered
}

// TestNormStreamWriteCheck: a write that does not end where the scan said is an error naming
// the chunk, not silently wrong data.
func TestNormStreamWriteCheck(t *testing.T) {
	s, _ := pcgState(newPCG(1))
	out := make([]float64, 10)
	task := &streamTask{base: s, out: out, std: 1, chunks: []chunkScan{{a: 0, b: 10, count: 10, end: 9}}}
	writeChunks(task, 0, 1)
	if task.chunks[0].err == nil {
		t.Fatal("a chunk whose 10 values end after word 9 passed the write check")
	}
}

// BenchmarkNormStream: the normal draws of a tensor (W1 of a Qwen3-30B-A3B EP-8 rank is 50 M
// values), serial (workers=1) and split over every core, in values/s and CPU nanoseconds per
// value (the split's work: its scan decodes every value a second time, so about twice the
// serial loop's decoding, whatever the machine's load).
func BenchmarkNormStream(b *testing.B) {
	for _, n := range []int{1 << 20, 1 << 25} {
		for _, w := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("n=%d/workers=%d", n, w), func(b *testing.B) {
				v := make([]float64, n)
				// forced, even where defaultStreamSplit stays serial (below 3 cores)
				sp := streamSplit{workers: w, chunk: 1 << 16, min: 1 << 18}
				cpu0 := cpuSeconds()
				for b.Loop() {
					if err := normStream(newPCG(1), v, 1, sp); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "values/s")
				if cpu := cpuSeconds() - cpu0; cpu > 0 {
					b.ReportMetric(cpu*1e9/(float64(n)*float64(b.N)), "cpu-ns/value")
				}
			})
		}
	}
}
