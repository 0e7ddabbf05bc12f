package worker

import "strconv"

// A client decodes a result header for every run: ~20 tensor entries, which encoding/json
// decodes in tens of microseconds (issue 14's profile: 2.4 % of the CLI's CPU). fastResult
// reads the one layout the Go worker writes (json.Marshal of a result Header: type, id,
// tensors, each with name, dtype, shape, offset, bytes and perhaps size; plain ASCII names) by hand, and
// declines anything else — another key order, spacing, escapes, fields, a Python worker's
// formatting — which readHeader then decodes with encoding/json. What it accepts it decodes
// exactly as json.Unmarshal would (FuzzFastResult compares them).

// fastResult decodes b as a result header when it has the Go worker's exact layout.
func fastResult(b []byte) (Header, bool) {
	p := hdrParser{b: b}
	h := Header{Type: TypeResult}
	if !p.lit(`{"type":"result"`) {
		return Header{}, false
	}
	if p.lit(`,"id":`) {
		id, ok := p.uint()
		if !ok {
			return Header{}, false
		}
		h.ID = id
	}
	if !p.lit(`,"tensors":[`) {
		return Header{}, false
	}
	h.Tensors = make([]TensorHeader, 0, 24)
	for {
		var t TensorHeader
		var ok bool
		if !p.lit(`{"name":"`) {
			return Header{}, false
		}
		if t.Name, ok = p.str(); !ok || !p.lit(`,"dtype":"`) {
			return Header{}, false
		}
		if t.DType, ok = p.str(); !ok || !p.lit(`,"shape":[`) {
			return Header{}, false
		}
		t.Shape = []int{}
		if !p.lit(`]`) {
			for {
				d, ok := p.int()
				if !ok || int64(int(d)) != d {
					return Header{}, false
				}
				t.Shape = append(t.Shape, int(d))
				if p.lit(`]`) {
					break
				}
				if !p.lit(`,`) {
					return Header{}, false
				}
			}
		}
		if !p.lit(`,"offset":`) {
			return Header{}, false
		}
		if t.Offset, ok = p.int(); !ok || !p.lit(`,"bytes":`) {
			return Header{}, false
		}
		if t.Bytes, ok = p.int(); !ok {
			return Header{}, false
		}
		if p.lit(`,"size":`) { // a zero tail (zerotail.go)
			if t.Size, ok = p.int(); !ok {
				return Header{}, false
			}
		}
		if !p.lit(`}`) {
			return Header{}, false
		}
		h.Tensors = append(h.Tensors, t)
		if p.lit(`]}`) {
			break
		}
		if !p.lit(`,`) {
			return Header{}, false
		}
	}
	return h, p.i == len(p.b)
}

// hdrParser reads a header's bytes left to right; every method consumes what it accepts.
type hdrParser struct {
	b []byte
	i int
}

// lit consumes s when the input continues with it.
func (p *hdrParser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// str reads the rest of a string and its closing quote: printable ASCII without escapes
// (which encoding/json reads as themselves).
func (p *hdrParser) str() (string, bool) {
	for j := p.i; j < len(p.b); j++ {
		c := p.b[j]
		if c == '"' {
			s := string(p.b[p.i:j])
			p.i = j + 1
			return s, true
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			return "", false
		}
	}
	return "", false
}

// digits reads a JSON integer's digits: 0, or 1 to 18 digits without a leading zero (so
// that the value fits an int64 without overflow checks).
func (p *hdrParser) digits() (uint64, bool) {
	j := p.i
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
		j++
	}
	n := j - p.i
	if n == 0 || n > 18 || (n > 1 && p.b[p.i] == '0') {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.b[p.i:j]), 10, 64)
	if err != nil {
		return 0, false
	}
	p.i = j
	return v, true
}

func (p *hdrParser) uint() (uint64, bool) { return p.digits() }

func (p *hdrParser) int() (int64, bool) {
	neg := p.lit("-")
	v, ok := p.digits()
	if !ok || (neg && v == 0) { // "-0" is left to encoding/json
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}
