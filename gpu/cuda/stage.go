package cuda

// This file has no build tag: the staging layout and the descriptor encoding of the fused
// kernel prepare_bufs (kernels/elementwise.cu) are pure Go, unit-tested without a GPU
// (stage_test.go). Nothing here imports gorgonia.org/cu.

import (
	"encoding/binary"
	"fmt"

	"github.com/moecheck/moecheck/gpu"
)

// Operations of a prepare_bufs descriptor (kernels/elementwise.cu OP_*).
const (
	opPoison = 0 // dst: n elements of dtype dt filled per policy arg (gpu.Poison), buffer id buf
	opStale  = 1 // dst: n elements kept; non-finite ones become Huge (draw of buffer id buf)
	opFill   = 2 // dst: n bytes of value arg
	opGuard  = 3 // n zones of arg bytes each, listed at src (zone table): filled with their pattern
	opCheck  = 4 // the same zones checked: first damage min-reduced into the u64 at dst
	opCopy   = 5 // n bytes from src to dst (both 16-byte aligned)
)

// descBytes is one descriptor: 8 little-endian u64 words: op, dst, src, n, dt, arg, buf and
// the descriptor's first block in the launch's grid (kernels/elementwise.cu prepare_bufs).
const descBytes = 64

// guardBytes is the size of each guard zone, before and after every allocation's data.
const guardBytes = 256

// zoneBytes is one guard-zone table entry: address, bytes, tag (guardZones).
const zoneBytes = 24

// stageAlign is the alignment of every item in a staging buffer (16: the fused kernel copies
// and fills 16-byte vectors).
const stageAlign = 16

// stageMax is the largest tensor copied through the device staging buffers; larger ones are
// copied directly between their buffer and the lane's pinned host buffer (one driver call
// each), so that a real-shape case does not hold a second device copy of gigabytes of
// inputs or results. Small cases, the default distribution, stage everything.
const stageMax = 8 << 20

// maxStaging bounds a staging plan (a case's inputs or results; the case limits keep real
// cases far below): larger plans are refused with an error instead of overflowing.
const maxStaging = 1 << 40

// threads per block of prepare_bufs, and the most blocks one descriptor gets.
const (
	prepThreads   = 256
	prepMaxBlocks = 1024
	// prepMaxDescs bounds a descriptor list (a run has about 60).
	prepMaxDescs = 1 << 16
)

// staged reports whether a tensor of n bytes goes through the device staging buffer.
func staged(n int64) bool { return n <= stageMax }

// stagePlan places items in a staging buffer: a head of head bytes at offset 0, then each
// staged item at a 16-byte boundary; items too large to stage follow in the host buffer
// only (Dev: the bytes of the device staging buffer; Host: of the host buffer).
type stagePlan struct {
	Off       []int64 // each item's offset in the host buffer (and, when staged, in the device one)
	Staged    []bool
	Dev, Host int64
}

func alignUp(n int64) int64 { return (n + stageAlign - 1) &^ (stageAlign - 1) }

// planStaging lays out a head and items of the given sizes (bytes). Negative sizes and
// plans above maxStaging are errors.
func planStaging(head int64, sizes []int64) (stagePlan, error) {
	if head < 0 || head > maxStaging {
		return stagePlan{}, fmt.Errorf("cuda: staging head of %d bytes: want between 0 and %d", head, int64(maxStaging))
	}
	p := stagePlan{Off: make([]int64, len(sizes)), Staged: make([]bool, len(sizes))}
	at := alignUp(head)
	var direct int64
	for i, n := range sizes {
		if n < 0 || n > maxStaging {
			return stagePlan{}, fmt.Errorf("cuda: staging item %d of %d bytes: want between 0 and %d", i, n, int64(maxStaging))
		}
		if staged(n) {
			p.Staged[i], p.Off[i] = true, at
			at = alignUp(at + n)
		} else {
			direct += alignUp(n)
		}
		if at+direct > maxStaging {
			return stagePlan{}, fmt.Errorf("cuda: staging of %d+ bytes exceeds %d", at+direct, int64(maxStaging))
		}
	}
	p.Dev = at
	for i, n := range sizes {
		if !p.Staged[i] {
			p.Off[i] = at
			at += alignUp(n)
		}
	}
	p.Host = at
	return p, nil
}

// prepDesc is one descriptor of prepare_bufs (see the op* constants).
type prepDesc struct {
	op       uint64
	dst, src uint64 // device addresses
	n        int64
	dt       int64
	arg      int64
	buf      int64
}

// units is the number of work items of d the kernel's threads stride over.
func (d prepDesc) units() int64 {
	switch d.op {
	case opFill, opCopy:
		return (d.n + 15) / 16 // 16-byte vectors, the tail bytes by the last unit's threads
	case opGuard, opCheck:
		return d.n * d.arg // one byte of one zone each
	}
	return d.n // one element each
}

// blocks is the number of blocks d gets: enough for one unit per thread, at least 1, at most
// prepMaxBlocks (the threads then stride).
func (d prepDesc) blocks() int64 {
	return max(1, min(prepMaxBlocks, (d.units()+prepThreads-1)/prepThreads))
}

// bufDesc is the preparation of a pooled buffer that is not an input: n bytes of data at
// dst, buf its gpu.Buffer (0: internal), dt and es the kernels' dtype code and element size,
// kept whether the buffer holds the previous run's values for the same element count and
// dtype. Internal buffers get 0xFF bytes (the path writes them fully); path buffers the
// poison policy p over their n/es elements, Stale being the kept values with non-finite
// ones made Huge when kept, Huge otherwise (as gpu/sim's pool).
func bufDesc(dst uint64, n int64, buf gpu.Buffer, dt, es int64, p gpu.Poison, kept bool) prepDesc {
	if buf == 0 {
		return prepDesc{op: opFill, dst: dst, n: n, arg: 0xff}
	}
	d := prepDesc{op: opPoison, dst: dst, n: n / es, dt: dt, arg: int64(p), buf: int64(buf)}
	if p == gpu.PoisonStale {
		d.arg = int64(gpu.PoisonHuge)
		if kept {
			d.op = opStale
		}
	}
	return d
}

// encodeDescs writes ds into out (len(ds)·descBytes bytes), each with its first block, and
// returns the grid's block count. Every descriptor gets at least one block, so the first
// blocks increase strictly (the kernel finds a block's descriptor by binary search).
func encodeDescs(out []byte, ds []prepDesc) (int64, error) {
	if len(ds) == 0 || len(ds) > prepMaxDescs {
		return 0, fmt.Errorf("cuda: %d prepare descriptors: want between 1 and %d", len(ds), prepMaxDescs)
	}
	if len(out) < len(ds)*descBytes {
		return 0, fmt.Errorf("cuda: %d bytes for %d descriptors: want %d", len(out), len(ds), len(ds)*descBytes)
	}
	var first int64
	for i, d := range ds {
		if d.n < 0 || d.n > maxStaging {
			return 0, fmt.Errorf("cuda: descriptor %d (op %d) of size %d: want between 0 and %d", i, d.op, d.n, int64(maxStaging))
		}
		w := out[i*descBytes : (i+1)*descBytes]
		for j, v := range []uint64{d.op, d.dst, d.src, uint64(d.n), uint64(d.dt), uint64(d.arg), uint64(d.buf), uint64(first)} {
			binary.LittleEndian.PutUint64(w[8*j:], v)
		}
		first += d.blocks()
	}
	return first, nil
}

// encodeZones writes the guard-zone table zones ((address, bytes, tag) triples) into out.
func encodeZones(out []byte, zones []uint64) {
	for i, x := range zones {
		binary.LittleEndian.PutUint64(out[8*i:], x)
	}
}

// guardByte is kernels/elementwise.cu's guard_byte: byte i of the zone with tag tag.
func guardByte(tag uint64, i int64) byte {
	return byte(0xA5 ^ (tag * 29) ^ uint64(i*7))
}
