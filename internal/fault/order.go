package fault

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"

	"github.com/moecheck/moecheck/moe"
)

// RunOrder numbers the runs of each case on one backend instance, for NondeterministicSum:
// its slot order changes from one run of a case to the next, as unordered atomics would,
// while staying a function of what the instance was asked (the case and how often it ran
// it before), not of which other cases the instance happened to run in between. With
// --jobs N the cases are spread over the instances by the scheduler, so a plain run counter
// made the fault's results, and the verdicts and shrunk sizes of its mutant, depend on N
// and on timing (TestNondeterministicSumSameForJobs).
//
// It keeps the last runOrderCases cases (a trial's case and the cases its properties derive
// from it fit); a case not among them starts again at its first run. The zero value is ready.
type RunOrder struct {
	keys  [runOrderCases]uint64
	runs  [runOrderCases]uint64
	valid [runOrderCases]bool
	next  int
}

const runOrderCases = 64

// Next returns how many times the case with key k ran before on this instance (0 for the
// first run) and counts this run.
func (o *RunOrder) Next(k uint64) uint64 {
	for i := range o.keys {
		if o.valid[i] && o.keys[i] == k {
			n := o.runs[i]
			o.runs[i]++
			return n
		}
	}
	i := o.next
	o.next = (o.next + 1) % runOrderCases
	o.keys[i], o.runs[i], o.valid[i] = k, 1, true
	return 0
}

// CaseKey is a 64-bit digest (FNV-1a) of everything that defines case c: its configuration,
// routing (local and global) and every tensor's bits.
func CaseKey(c *moe.Case) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%+v|%v|", c.Config, c.NonFinite)
	var b [8]byte
	f64s := func(v []float64) {
		binary.LittleEndian.PutUint64(b[:], uint64(len(v)))
		h.Write(b[:])
		for _, x := range v {
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(x))
			h.Write(b[:])
		}
	}
	binary.LittleEndian.PutUint64(b[:], uint64(len(c.Routing.IDs)))
	h.Write(b[:])
	for _, id := range c.Routing.IDs {
		binary.LittleEndian.PutUint32(b[:4], uint32(id))
		h.Write(b[:4])
	}
	f64s(c.Routing.Weights)
	for _, v := range [][]float64{c.X, c.W1, c.B1, c.W2, c.B2, c.DY} {
		f64s(v)
	}
	if g := c.Global; g != nil {
		fmt.Fprintf(h, "|%+v|", g.Options)
		for _, id := range g.IDs {
			binary.LittleEndian.PutUint64(b[:], uint64(id))
			h.Write(b[:])
		}
		f64s(g.Weights)
	}
	return h.Sum64()
}
