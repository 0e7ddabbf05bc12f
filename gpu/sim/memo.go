package sim

import (
	"bytes"
	"unsafe"

	"github.com/moecheck/moecheck/moe"
)

// The memo keeps, per stage of the path, the inputs and outputs of the last computation of
// that stage, so that a Run whose stage reads bitwise the same bytes as before copies the
// outputs instead of recomputing them. A property runs one case many times on one Backend
// (poison-invariance under every policy, deterministic twice, matches and the shared base
// runs): poison reaches only the sentinel tail rows and unwritten memory, which the GEMMs of a
// correct path do not read, so every GEMM, weight gradient and activation of those runs reads
// what the first run's read.
//
// Exact by construction: a stage's output is a pure function of the bytes it reads and of the
// switches that select its operations, and the memo's key is all of them, compared bitwise
// (NaN payloads and signed zeros count), never a hash:
//
//	gemm        the row→expert map (rows: which rows are written, with which expert's weights,
//	            and the pairs of rows the two-row kernel forms, which decide a NaN's sign),
//	            the input rows it maps, the weights (their conversion generation, counted up
//	            each time load writes the tensor — at least wherever its values changed —
//	            and nothing else writes it), the bias and each row's group (rowG) where there is a bias, n, k, the
//	            dtype, fault AccumInDtype (another kernel, no pairs);
//	wgrad       the expert ranges [begin(e), wend(e)) (the offsets, S and SentinelWrap), the
//	            rows of both operands below the last range's end, m, n, the dtype,
//	            AccumInDtype; only experts with rows are kept: an empty expert's block (zeros,
//	            or fault StaleEmptyWgrad's previous block, or EmptyExpertWgrad's poison) is
//	            written as without the memo, every Run;
//	activation  rows [0, R) of h1 (and of d_act for the backward), R, I, the activation,
//	            the dtype, fault GateUpSwapped; the rows from R on are computed every Run
//	            (under mask B, the forward's tail as row R copied: forward.go).
//
// A fault that makes a stage read other bytes (tail rows, another expert's weights, other
// rows) changes the key, so the stage is computed. The state-carrying faults act outside
// what the memo keeps (NondeterministicSum in the combine and the scatter-add, which are
// computed every Run; StaleEmptyWgrad on empty experts, see wgrad).
//
// Kept only where a rerun is likely: a Run stores its computations (replacing the entries)
// when its case's X is the memory the previous Run's was (the case run again: the runs of a
// trial's case under each property and poison policy), or when it is the first Run after
// Forget (a trial's first run); a case run once (a derived case, an ep-split-sum rank, the
// history property's runs on fresh instances) stores nothing, costs no copy and leaves the
// trial case's entries in place for its next runs. The address only decides what to keep,
// never whether an entry serves: the key decides that, compared in full.
//
// Bounded: all entries together hold at most maxMemo elements (an entry that would pass it
// is not kept); Forget and Close drop the entries.

// maxMemo is the most elements (float32 values and int32 indices, 4 bytes each: 8 MiB) the
// memo's entries hold together.
const maxMemo = 1 << 21

// memoMinWork is the least work (multiply-adds of a GEMM or weight gradient, elements of an
// activation) of a stage the memo keeps: below it the computation costs about what the
// comparison and copies cost.
const memoMinWork = 256

// Memo slots: one entry per stage of the path.
const (
	memoGemm1   = iota // forward GEMM 1 (step 5)
	memoGemm2          // forward GEMM 2 (step 7)
	memoDgrad2         // GEMM 2 dgrad (step 13)
	memoDgrad1         // GEMM 1 dgrad (step 16)
	memoWgrad2         // GEMM 2 wgrad (step 14)
	memoWgrad1         // GEMM 1 wgrad (step 17)
	memoAct            // activation (step 6)
	memoActBack        // activation backward (step 15)
	memoSlots
)

// memo is the Backend's stage memo (one per state).
type memo struct {
	off  bool // no memo: every stage computes (tests, Backend.noReuse)
	keep bool // this Run stores its computations (see above; set by begin)
	// lastX is the address of the previous Run's X; forgot: no Run since drop.
	lastX  uintptr
	forgot bool
	limit  int // the most elements the entries hold; 0: maxMemo (tests set less)
	slots  [memoSlots]memoEntry
	// hits and misses count, per slot, the stage computations served from the memo and
	// those computed while the memo was on (tests read them).
	hits, misses [memoSlots]int
}

// memoHead is the scalar part of a key.
type memoHead struct {
	n, k, s int       // output row width, input row width, rows (or R)
	d       moe.DType // the case's dtype
	act     moe.Activation
	f1, f2  bool   // stage switches: gemm and wgrad AccumInDtype, wgrad SentinelWrap, activation GateUpSwapped
	wgen    uint64 // gemm: the conversion generation of the weights read
	nbias   int    // gemm: bias elements
}

// memoEntry is one stage's last computation: its key (head, ints, in) and its outputs.
type memoEntry struct {
	ok   bool
	head memoHead
	ints []int32
	in   []float32
	out  []float32
}

// drop forgets every entry (keeping their memory, bounded by maxMemo); the next Run stores.
func (m *memo) drop() {
	for i := range m.slots {
		m.slots[i].ok = false
	}
	m.forgot = true
}

// begin sets whether the Run of a case whose X is at address x stores its computations.
func (m *memo) begin(x uintptr) {
	m.keep = x == m.lastX || m.forgot
	m.lastX, m.forgot = x, false
}

// used is the elements the entries hold (their capacity).
func (m *memo) used() int {
	n := 0
	for i := range m.slots {
		e := &m.slots[i]
		n += cap(e.ints) + cap(e.in) + cap(e.out)
	}
	return n
}

// memoKey walks a key's parts: compares them with an entry's (match), counts them (size) or
// appends them to it (store). The order of the parts is the stage's key function's.
type memoKey struct {
	e      *memoEntry
	mode   int // keyMatch, keySize, keyStore
	ip, fp int // match: cursors in e.ints, e.in
	eq     bool
	ni, nf int // size: elements
}

const (
	keyMatch = iota
	keySize
	keyStore
)

func (k *memoKey) ints(v []int32)     { keyPart(k, v, &k.e.ints, &k.ip, &k.ni) }
func (k *memoKey) floats(v []float32) { keyPart(k, v, &k.e.in, &k.fp, &k.nf) }

// keyPart is ints and floats: part v of a key against (match), into (size) or appended to
// (store) the entry's elements have, at cursor cur; n counts the elements (size).
func keyPart[T int32 | float32](k *memoKey, v []T, have *[]T, cur, n *int) {
	switch k.mode {
	case keyMatch:
		if !k.eq {
			return
		}
		if *cur+len(v) > len(*have) || !bytes.Equal(bytesOf(v), bytesOf((*have)[*cur:*cur+len(v)])) {
			k.eq = false
		}
		*cur += len(v)
	case keySize:
		*n += len(v)
	default:
		*have = append(*have, v...)
	}
}

// lookup reports whether slot's entry holds head and the parts key writes, all of them; then
// its outputs are the stage's (the caller copies them out).
func (m *memo) lookup(slot int, head memoHead, key func(*memoKey)) (*memoEntry, bool) {
	e := &m.slots[slot]
	if !e.ok || e.head != head {
		m.misses[slot]++
		return nil, false
	}
	k := memoKey{e: e, mode: keyMatch, eq: true}
	key(&k)
	if !k.eq || k.ip != len(e.ints) || k.fp != len(e.in) {
		m.misses[slot]++
		return nil, false
	}
	m.hits[slot]++
	return e, true
}

// store makes slot's entry the computation of head with the parts key writes and nout
// outputs, where maxMemo leaves room; it returns the entry, whose out the caller fills with
// nout elements (append), or nil.
func (m *memo) store(slot int, head memoHead, nout int, key func(*memoKey)) *memoEntry {
	if !m.keep {
		return nil
	}
	e := &m.slots[slot]
	e.ok = false
	k := memoKey{e: e, mode: keySize}
	key(&k)
	// Exact capacities, so that used() is what the entries hold.
	need := max(cap(e.ints), k.ni) + max(cap(e.in), k.nf) + max(cap(e.out), nout)
	limit := m.limit
	if limit == 0 {
		limit = maxMemo
	}
	if m.used()-cap(e.ints)-cap(e.in)-cap(e.out)+need > limit {
		*e = memoEntry{} // releases its memory
		return nil
	}
	e.ints, e.in, e.out = reserve(e.ints, k.ni), reserve(e.in, k.nf), reserve(e.out, nout)
	k = memoKey{e: e, mode: keyStore}
	key(&k)
	e.head, e.ok = head, true
	return e
}

// reserve returns v emptied, with capacity for n elements (an allocation of exactly n where
// v's is smaller).
func reserve[T any](v []T, n int) []T {
	if cap(v) < n {
		return make([]T, 0, n)
	}
	return v[:0]
}

// bytesOf is v's memory as bytes, for bitwise comparisons.
func bytesOf[T int32 | float32](v []T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

// writtenRuns calls f(a, b) for every maximal run [a, b) of rows with rows[i] ≥ 0 (the rows a
// gemm writes), in order.
func writtenRuns(rows []int32, f func(a, b int)) {
	for i := 0; i < len(rows); {
		if rows[i] < 0 {
			i++
			continue
		}
		a := i
		for i < len(rows) && rows[i] >= 0 {
			i++
		}
		f(a, i)
	}
}
