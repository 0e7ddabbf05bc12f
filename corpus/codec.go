package corpus

import (
	"fmt"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// PoisonOf resolves the poison selector of decoded fuzz bytes to its policy:
// gpu.Poisons()[m.Poison % len(gpu.Poisons())].
func PoisonOf(m moe.CaseMeta) gpu.Poison {
	ps := gpu.Poisons()
	return ps[int(m.Poison)%len(ps)]
}

// FromBytes decodes fuzz bytes with moe.DecodeCase into an entry named name: the case, its
// poison policy as the one hint, a data description when the tensors are exactly generated
// from the decoded seed, and a provenance comment naming the input (in hex up to 256 bytes).
func FromBytes(name string, data []byte, lim moe.DecodeLimits) *Entry {
	c, m := moe.DecodeCase(data, lim)
	e := &Entry{Name: name, Case: c, Poisons: []gpu.Poison{PoisonOf(m)}}
	prov := fmt.Sprintf("decoded by moe.DecodeCase from %d fuzz input bytes", len(data))
	if len(data) <= 256 {
		prov += fmt.Sprintf(": %x", data)
	}
	e.Comments = []string{prov}
	if m.Seeded() {
		e.Data = &DataSpec{Seed: m.Seed, Mode: m.Data}
	}
	return e
}

// Bytes encodes e's case as fuzz bytes (moe.EncodeCase) that moe.DecodeCase(bytes, lim)
// decodes to the same case, with the entry's first poison policy (zeros when it has none) as
// the poison selector and its data description, if any, as the seed. Use it to seed a fuzz
// target with corpus entries (f.Add(b)). It fails when the case does not fit lim.
func (e *Entry) Bytes(lim moe.DecodeLimits) ([]byte, error) {
	if e == nil || e.Case == nil {
		return nil, fmt.Errorf("corpus: entry without a case")
	}
	var m moe.CaseMeta
	if len(e.Poisons) > 0 {
		m.Poison = uint8(e.Poisons[0])
	}
	if d := e.Data; d != nil {
		m.Seed, m.Data = d.Seed, d.Mode
	}
	b, err := moe.EncodeCase(e.Case, m, lim)
	if err != nil {
		return nil, fmt.Errorf("corpus: %s: %w", e.Name, err)
	}
	return b, nil
}
