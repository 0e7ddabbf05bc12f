package worker

import (
	"slices"

	"github.com/moecheck/moecheck/internal/f64bits"
	"github.com/moecheck/moecheck/moe"
)

// A check runs each case several times (the base runs of its trial, a run per policy of
// poison-invariance, deterministic's second run, ...), and a lane sends the same case's
// tensors every time: reqCache keeps the lane's last encoded case and reuses it for the next
// run when that run's case is provably the same — the same *moe.Case, holding exactly the
// values (bit for bit) it held when it was encoded, which a copy made then shows. A case
// changed in place between runs is encoded again (TestRequestCacheSeesChanges).

// maxCachedElements bounds the cases a lane caches (moe.Config.Elements): the copy costs 8
// bytes a value beside the case, a small part of what judging the case costs (the oracle's
// workspace) but not worth holding for cases of gigabytes, whose runs take long anyway.
const maxCachedElements = 1 << 22

// reqCache is one lane's last encoded case. The zero value holds none.
type reqCache struct {
	c    *moe.Case // the case encoded (held: its address cannot be reused while cached)
	snap *moe.Case // a copy of its values when it was encoded
	enc  *encodedCase
}

// encode returns the encoded case c, reusing the cached one when c is the cached case with
// the same values; hit reports the reuse.
func (q *reqCache) encode(c *moe.Case) (e *encodedCase, hit bool, err error) {
	if c != nil && c == q.c && sameCase(c, q.snap) {
		return q.enc, true, nil
	}
	e, err = encodeCase(c)
	if err != nil {
		return nil, false, err
	}
	*q = reqCache{}
	if c.Elements() <= maxCachedElements {
		*q = reqCache{c: c, snap: c.Clone(), enc: e}
	}
	return e, false, nil
}

// sameCase reports whether a and b hold the same config, flags and values, bit for bit
// (NaN payloads and the sign of zero included: they are encoded).
func sameCase(a, b *moe.Case) bool {
	if a.Config != b.Config || a.NonFinite != b.NonFinite || (a.Global == nil) != (b.Global == nil) {
		return false
	}
	if !slices.Equal(a.Routing.IDs, b.Routing.IDs) || !f64bits.Equal(a.Routing.Weights, b.Routing.Weights) {
		return false
	}
	for _, p := range [][2][]float64{{a.X, b.X}, {a.W1, b.W1}, {a.B1, b.B1}, {a.W2, b.W2}, {a.B2, b.B2}, {a.DY, b.DY}} {
		if !f64bits.Equal(p[0], p[1]) {
			return false
		}
	}
	if a.Global != nil {
		ga, gb := a.Global, b.Global
		if ga.Options != gb.Options || !slices.Equal(ga.IDs, gb.IDs) || !f64bits.Equal(ga.Weights, gb.Weights) {
			return false
		}
	}
	return true
}
