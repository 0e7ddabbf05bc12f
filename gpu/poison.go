package gpu

import (
	"fmt"
	"strings"
)

// Poison is the fill of memory the path takes uninitialized. A correct path writes (or
// zeroes) everything it reads, so its result is bitwise identical under every policy.
type Poison uint8

const (
	// PoisonZeros: zero bytes, what fresh device memory reads as (training step 1).
	PoisonZeros Poison = iota
	// PoisonNaN: quiet NaN everywhere.
	PoisonNaN
	// PoisonPosInf: +Inf everywhere.
	PoisonPosInf
	// PoisonNegInf: −Inf everywhere.
	PoisonNegInf
	// PoisonHuge: finite values of huge magnitude, ±(1e4·|N(0,1)|+1e4)·... clamped to the
	// dtype's range: each element ±MaxFinite/2^k for a random k in [0, 8).
	PoisonHuge
	// PoisonStale: the finite values the same buffer held after the previous run of the
	// backend (recycled memory, training step 2); on the first run, PoisonHuge.
	PoisonStale
	// PoisonSignature: a distinct quiet-NaN payload per buffer (Buffer.SignatureNaN), so a
	// value that survives to an output names the buffer that was never written.
	PoisonSignature
	numPoisons
)

// poisonList lists every policy.
var poisonList = []Poison{PoisonZeros, PoisonNaN, PoisonPosInf, PoisonNegInf, PoisonHuge, PoisonStale, PoisonSignature}

var poisonNames = [...]string{"zeros", "nan", "+inf", "-inf", "huge", "stale", "signature"}

func (p Poison) String() string {
	if p < numPoisons {
		return poisonNames[p]
	}
	return fmt.Sprintf("poison(%d)", uint8(p))
}

// ParsePoison parses a policy name ("zeros", "nan", "+inf" or "inf", "-inf", "huge",
// "stale", "signature" or "sig").
func ParsePoison(s string) (Poison, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "inf", "posinf":
		return PoisonPosInf, nil
	case "neginf":
		return PoisonNegInf, nil
	case "sig":
		return PoisonSignature, nil
	case "zero", "fresh":
		return PoisonZeros, nil
	}
	for i, n := range poisonNames {
		if s == n {
			return Poison(i), nil
		}
	}
	return 0, fmt.Errorf("gpu: unknown poison policy %q (want one of %s)", s, strings.Join(poisonNames[:], ", "))
}

// Poisons returns every poison policy (a fresh copy: the table itself cannot be changed from outside).
func Poisons() []Poison { return append([]Poison(nil), poisonList...) }

// Valid reports whether p is one of Poisons() (without copying the table).
func (p Poison) Valid() bool {
	for _, q := range poisonList {
		if p == q {
			return true
		}
	}
	return false
}
