package fuzz

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/moe"
)

// seedsDir is the corpus of named seed cases.
var seedsDir = filepath.Join("..", "corpus", "seeds")

// parseLimits keep fuzzed corpus files cheap: what they describe is generated.
var parseLimits = moe.Limits{MaxT: 256, MaxH: 256, MaxI: 256, MaxE: 64, MaxK: 16, MaxWorld: 64, MaxG: 4096, MaxSlots: 4096, MaxElements: 1 << 18}

func seedFiles(f *testing.F) [][]byte {
	paths, err := filepath.Glob(filepath.Join(seedsDir, "*"+corpus.Ext))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed files in %s: %v", seedsDir, err)
	}
	paths = append(paths, filepath.Join("..", "corpus", "testdata", "golden.case"))
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzCorpusParse(f *testing.F) {
	for _, b := range seedFiles(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.case"
		e, err := corpus.ParseWith(bytes.NewReader(data), name, corpus.ParseOptions{Limits: parseLimits})
		if err != nil {
			if !strings.HasPrefix(err.Error(), name+":") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := e.Case.Validate(parseLimits); err != nil {
			t.Fatalf("parsed an invalid case: %v", err)
		}
		var a bytes.Buffer
		if err := corpus.Format(&a, e); err != nil {
			t.Fatalf("Format refuses a parsed entry: %v", err)
		}
		p, err := corpus.ParseWith(bytes.NewReader(a.Bytes()), name, corpus.ParseOptions{Limits: parseLimits})
		if err != nil {
			t.Fatalf("Parse(Format(e)): %v\n%s", err, a.String())
		}
		if !p.Equal(e) {
			t.Fatalf("Parse(Format(e)) differs from e:\n%s", a.String())
		}
		var b bytes.Buffer
		if err := corpus.Format(&b, p); err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("Format is not a fixed point (%v)", err)
		}
	})
}

// maxSaved bounds the cases FuzzDecodeCase also saves in the corpus format and reads back:
// text costs about 0.2 µs a value each way, which would dominate the target on larger cases
// (FuzzCorpusParse covers the format itself).
const maxSaved = 2048

func FuzzDecodeCase(f *testing.F) {
	lim := moe.DecodeLimits{}
	f.Add([]byte{})
	f.Add([]byte("37531=733D6")) // T=4 H=8 I=6 E=4 K=2 fp16 gpt-oss transposed, EP rank 3 of 8, global keep, specials 1/16 with NaN/Inf, poison signature
	es, err := corpus.LoadDir(seedsDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range es {
		if b, err := e.Bytes(lim); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, m := moe.DecodeCase(data, lim)
		if err := c.Validate(moe.Limits{}); err != nil {
			t.Fatalf("invalid case: %v", err)
		}
		l := lim.Resolve()
		if c.T > l.MaxT || c.H > l.MaxH || c.I > l.MaxI || c.E > l.MaxE || c.K > l.MaxK || c.EP.WorldSize() > l.MaxWorld || c.Elements() > l.MaxElements {
			t.Fatalf("%s exceeds the decode limits %+v", c.Config, l)
		}
		c2, m2 := moe.DecodeCase(data, lim)
		if !moe.EqualCases(c, c2) || m != m2 {
			t.Fatal("not deterministic")
		}
		enc, err := moe.EncodeCase(c, m, lim)
		if err != nil {
			t.Fatalf("EncodeCase: %v", err)
		}
		if c3, m3 := moe.DecodeCase(enc, lim); !moe.EqualCases(c, c3) || m3.Poison != m.Poison {
			t.Fatalf("EncodeCase gives %x, which decodes to a different case", enc)
		}
		if c.Elements() > maxSaved {
			return
		}
		e := corpus.FromBytes("fuzz", data, lim)
		var buf bytes.Buffer
		if err := corpus.Format(&buf, e); err != nil {
			t.Fatalf("corpus cannot save the case: %v", err)
		}
		p, err := corpus.Parse(bytes.NewReader(buf.Bytes()), "fuzz.case")
		if err != nil || !p.Equal(e) {
			t.Fatalf("corpus does not read the saved case back (%v):\n%s", err, buf.String())
		}
	})
}
