package moe

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"runtime"

	"github.com/moecheck/moecheck/internal/par"
)

// streamSplit says how normStream splits a tensor's draws.
type streamSplit struct {
	// workers is the number of goroutines; below 2 the stream is drawn serially.
	workers int
	// chunk is the number of words a scan or write task decodes.
	chunk int
	// min is the number of values left below which the rest is drawn serially.
	min int
}

// defaultStreamSplit is Generate's split. Both the scan and the write decode every value, so
// the split costs about twice the serial loop's CPU time (BenchmarkNormStream's cpu-ns/value:
// 6.1–6.2 serial, 11.6–12.4 split) and on W cores takes about 2/W of its wall time: W = 2
// gains nothing (the stream stays serial), the 16 cores of the GPU host about 8×. A chunk of
// 2^16 words is about 0.4 ms of decoding (≈ 6 ns a value), against a jump of 2·64 128-bit
// multiplies and a fix-up of a value or two: well under 1 % overhead. A batch is split when
// it holds at least one chunk per worker, and never below 2^18 values (≈ 1.6 ms serially),
// where starting and joining the goroutines and the serial fix-up would eat much of the
// gain. A batch leaves about 4 % of its values to the next (1.04 words a value), so a tensor
// takes a few batches, the last few values serially.
func defaultStreamSplit() streamSplit {
	w := runtime.GOMAXPROCS(0)
	if w < 3 {
		w = 1
	}
	const chunk = 1 << 16
	return streamSplit{workers: w, chunk: chunk, min: max(1<<18, w*chunk)}
}

// normStream sets v[i] = r.NormFloat64()·std for i in order, r drawing from p, and leaves p
// where that serial loop would: it draws over the cores as sp says, with bitwise the serial
// loop's values and end state, for the following reasons.
//
// Generate draws a tensor as v[i] = rng.NormFloat64()·std for i = 0, 1, … from one PCG
// stream, and a seed must keep naming the same case. Rand.NormFloat64 (a ziggurat) takes a
// variable number of 64-bit words from its source per value: one 97 % of the time, more
// after a rejection (1.04 words a value on average). Every Rand method draws through src.Uint64 and Rand holds no state
// of its own (math/rand/v2 rand.go), so:
//
//   - the stream is a sequence of words w0, w1, … (PCG's LCG steps, DXSM output), and the
//     LCG can be put at word position n directly (pcgJump, O(log n));
//   - decoding is a function of the start position: NormFloat64 started at word p returns
//     the same value and ends at the same word p' whatever came before p (a counting source,
//     countingPCG, tells p');
//   - the serial loop's values are the decoding from word 0, its value starts s0 = 0 < s1 <
//     s2 < …, each s_{k+1} the end of value k.
//
// normStream splits the words into chunks [a, b) of L words and finds, for every chunk, the
// serial values that start in it (a value belongs to the chunk holding its first word even
// when its other words lie beyond b):
//
//  1. scan (parallel): each chunk is decoded from its assumed start a; it records how many
//     values start in [a, b), the first start at or after b (its end), and which of the
//     words a … a+63 are starts (head).
//  2. fix-up (serial, in chunk order): chunk 0's assumed start is the true one (word 0). The
//     true start t of chunk c is the previous chunk's true end. If t = a the scan is the
//     truth. If t ≥ b, no serial value starts in the chunk. Otherwise the chunk is decoded
//     from t until a start p is one of the scan's starts (head bit p−a): from p on both
//     decodings share a start and so agree, giving count = (values decoded from t) + (scan's
//     count − scan's starts below p) and the scan's end. If no start within a+63 meets, the
//     decoding from t simply runs on to b (serial and correct, only slower; with 97 % of
//     the values one word long, two decodings almost always share a start within a word
//     or two).
//  3. write (parallel): each chunk is decoded again from its true start, its count values
//     written at the prefix sum of the counts before it; the decoder must end exactly at the
//     chunk's end (checked: an error, not wrong data, if it does not).
//
// A batch covers as many words as there are values left to draw, so it never yields more
// values than wanted (each value takes at least one word) and needs no second buffer; the
// next batch starts at the batch's exact end (the word after the last value's words), and
// the last few values (below streamSplit.min) are drawn serially. The PCG is left at the
// position after the last value, so the draws that follow continue the same stream.
// TestNormStreamSameAsSerial holds this to the serial loop (small chunks, so chunk ends fall
// inside multi-word values), and TestGenerateSameAsSerial holds Generate to it.
//
// The split is used when p steps as the LCG pcgJump models (pcgSteps); otherwise the
// draws are serial.
func normStream(p *rand.PCG, v []float64, std float64, sp streamSplit) error {
	done := 0
	if sp.workers > 1 && sp.chunk > 0 && len(v) >= max(sp.min, 1) {
		if base, ok := pcgState(p); ok && pcgSteps(base) {
			for len(v)-done >= max(sp.min, 1) {
				n, end, err := streamBatch(base, v[done:], std, sp)
				if err != nil {
					return err
				}
				done += n
				base = pcgJump(base, end)
			}
			p.Seed(base.hi, base.lo)
		}
	}
	r := rand.New(p)
	for i := done; i < len(v); i++ {
		v[i] = r.NormFloat64() * std
	}
	return nil
}

// chunkScan is one chunk's part of a batch: words [a, b) = [c·L, min((c+1)·L, len(out))).
type chunkScan struct {
	a, b  uint64
	count int    // values starting in [a, b) (scanned from a; true after the fix-up)
	end   uint64 // the first value start at or after b
	head  uint64 // bit k: word a+k is a value start when decoding from a
	start uint64 // the chunk's true first value start (after the fix-up)
	off   int    // index in out of the chunk's first value (after the fix-up)
	err   error  // a write that did not end at end
}

// streamTask is a batch as par.For's argument.
type streamTask struct {
	base   u128 // LCG state at the batch's word 0
	out    []float64
	std    float64
	chunks []chunkScan
}

// streamBatch draws the values that start in the first len(out) words after base into out
// (n of them, n ≤ len(out)) and returns n and the word position after the last one.
func streamBatch(base u128, out []float64, std float64, sp streamSplit) (n int, end uint64, err error) {
	words := uint64(len(out))
	L := uint64(sp.chunk)
	t := &streamTask{base: base, out: out, std: std, chunks: make([]chunkScan, (words+L-1)/L)}
	for c := range t.chunks {
		t.chunks[c].a = uint64(c) * L
		t.chunks[c].b = min(uint64(c+1)*L, words)
	}
	split := par.New(sp.workers, 1)
	par.For(split, len(t.chunks), 1, t, scanChunks)
	for c := range t.chunks {
		t.fixChunk(c, end)
		t.chunks[c].off = n
		n += t.chunks[c].count
		end = t.chunks[c].end
	}
	par.For(split, len(t.chunks), 1, t, writeChunks)
	for c := range t.chunks {
		if t.chunks[c].err != nil {
			return 0, 0, t.chunks[c].err
		}
	}
	return n, end, nil
}

// scanChunks is pass 1 for chunks [lo, hi): decode each from its assumed start a.
func scanChunks(t *streamTask, lo, hi int) {
	for c := lo; c < hi; c++ {
		s := &t.chunks[c]
		d := newNormDecoder(t.base, s.a)
		for d.src.pos < s.b {
			if k := d.src.pos - s.a; k < 64 {
				s.head |= 1 << k
			}
			d.rng.NormFloat64()
			s.count++
		}
		s.end = d.src.pos
	}
}

// fixChunk is the fix-up of chunk c given the previous chunk's true end (0 for chunk 0).
func (t *streamTask) fixChunk(c int, prevEnd uint64) {
	s := &t.chunks[c]
	s.start = prevEnd
	if c == 0 || prevEnd == s.a {
		s.start = s.a
		return
	}
	if prevEnd >= s.b { // one value of an earlier chunk covers this whole chunk
		s.count, s.end = 0, prevEnd
		return
	}
	d := newNormDecoder(t.base, prevEnd)
	for j := 0; ; j++ {
		p := d.src.pos
		if p >= s.b {
			s.count, s.end = j, p
			return
		}
		if k := p - s.a; k < 64 && s.head>>k&1 == 1 {
			s.count = j + s.count - bits.OnesCount64(s.head&(1<<k-1))
			return
		}
		d.rng.NormFloat64()
	}
}

// writeChunks is pass 2 for chunks [lo, hi): decode each from its true start into out.
func writeChunks(t *streamTask, lo, hi int) {
	for c := lo; c < hi; c++ {
		s := &t.chunks[c]
		if s.count == 0 {
			continue
		}
		d := newNormDecoder(t.base, s.start)
		out := t.out[s.off : s.off+s.count]
		for i := range out {
			out[i] = d.rng.NormFloat64() * t.std
		}
		if d.src.pos != s.end {
			s.err = fmt.Errorf("moe: parallel normal stream: chunk %d's %d values ended at word %d, want %d (internal error)", c, s.count, d.src.pos, s.end)
		}
	}
}

// countingPCG is a PCG that counts the words drawn from it: pos is the position in the
// stream of the next word.
type countingPCG struct {
	pcg rand.PCG
	pos uint64
}

// Uint64 draws the next word.
func (c *countingPCG) Uint64() uint64 {
	c.pos++
	return c.pcg.Uint64()
}

// normDecoder decodes normal values from a word position of a batch.
type normDecoder struct {
	src countingPCG
	rng *rand.Rand
}

// newNormDecoder returns a decoder at word pos of the stream whose LCG state at word 0 is
// base.
func newNormDecoder(base u128, pos uint64) *normDecoder {
	s := pcgJump(base, pos)
	d := &normDecoder{src: countingPCG{pcg: *rand.NewPCG(s.hi, s.lo), pos: pos}}
	d.rng = rand.New(&d.src)
	return d
}
