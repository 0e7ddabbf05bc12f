package corpus_test

import (
	"bytes"
	"github.com/moecheck/moecheck/internal/fault"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// goldenEntry uses every feature of the format: global routing with kept sentinel weights,
// EP, gpt-oss, transposed, biases, explicit non-finite tensors with NaN payloads, −0 and
// subnormals, comments (empty, indented), poisons, faults and properties.
func goldenEntry(t *testing.T) *corpus.Entry {
	t.Helper()
	cfg := moe.Config{T: 3, H: 3, I: 2, E: 2, K: 2, EP: moe.EP{World: 3, Rank: 2}, Act: moe.GptOss, Layout: moe.Transposed,
		DType: moe.BF16, Bias: true}
	g := &moe.GlobalRouting{IDs: []int64{4, 1, 5, 5, 0, 2}, Weights: []float64{0.5, -0.25, 1, math.Copysign(0, -1), 3, 0},
		Options: moe.GlobalOptions{KeepSentinelWeights: true}}
	r, err := moe.FromGlobal(cfg, g.IDs, g.Weights, g.Options)
	if err != nil {
		t.Fatal(err)
	}
	c, err := moe.Generate(cfg, r, 77, moe.Subnormal)
	if err != nil {
		t.Fatal(err)
	}
	c.Global = g
	c.NonFinite = true
	c.X[0] = float64(math.Float32frombits(0x7fd50000))
	c.X[1] = math.Inf(-1)
	c.X[2] = math.Copysign(0, -1)
	c.W1[3] = float64(math.Float32frombits(0xffc00000))
	c.B2[1] = math.Inf(1)
	c.DY[4] = math.Ldexp(1, -133)
	return &corpus.Entry{
		Name:       "golden",
		Comments:   []string{"golden file of Format: every feature of the format", "", "  indented provenance, kept as written"},
		Case:       c,
		Poisons:    []gpu.Poison{gpu.PoisonPosInf, gpu.PoisonSignature},
		Faults:     fault.Of(fault.NoMaskUpDgrad, fault.ClampSentinel),
		Properties: []string{"exact-contracts", "poison-invariance"},
	}
}

func TestFormatGolden(t *testing.T) {
	e := goldenEntry(t)
	var buf bytes.Buffer
	if err := corpus.Format(&buf, e); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden.case")
	if *update {
		if err := corpus.WriteFile(path, e); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./corpus -run TestFormatGolden -update)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("Format differs from %s (run -update if intended):\n%s", path, firstDiff(string(want), buf.String()))
	}
	p, err := corpus.Parse(bytes.NewReader(want), path)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Equal(e) {
		t.Fatalf("%s parses to a different entry", path)
	}
}

// Parse(Format(e)) equals e, and Format is a fixed point on its own output.
func TestRoundTrip(t *testing.T) {
	entries := append(seedEntries(t), goldenEntry(t))
	// decoded fuzz inputs: every codec feature
	rng := moe.NewRand(9)
	for k := 0; k < 200; k++ {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		entries = append(entries, corpus.FromBytes("fuzz", b, moe.DecodeLimits{MaxT: 6, MaxH: 6, MaxI: 6}))
	}
	for _, e := range entries {
		var a bytes.Buffer
		if err := corpus.Format(&a, e); err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		p, err := corpus.Parse(bytes.NewReader(a.Bytes()), e.Name+".case")
		if err != nil {
			t.Fatalf("%s: %v\n%s", e.Name, err, a.String())
		}
		if !p.Equal(e) {
			t.Fatalf("%s: Parse(Format(e)) differs from e:\n%s", e.Name, a.String())
		}
		var b bytes.Buffer
		if err := corpus.Format(&b, p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("%s: Format(Parse(Format(e))) differs from Format(e)", e.Name)
		}
	}
}

func TestFormatRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(e *corpus.Entry)
		want   string
	}{
		{"entry/nil-case", func(e *corpus.Entry) { e.Case = nil }, "entry without a case"},
		{"case/invalid", func(e *corpus.Entry) { e.Case.X[1] = 0.1 }, "X (hidden)[1] = 0.1 is not a bf16 value"},
		{"comment/newline", func(e *corpus.Entry) { e.Comments = []string{"a\nb"} }, "comment 0 holds control character U+000A"},
		{"comment/utf8", func(e *corpus.Entry) { e.Comments = []string{"\xff"} }, "comment 0 is not UTF-8"},
		{"poison/unknown", func(e *corpus.Entry) { e.Poisons = []gpu.Poison{99} }, "unknown poison policy 99"},
		{"faults/unknown", func(e *corpus.Entry) { e.Faults = 1 }, "outside the catalog"},
		{"properties/bad", func(e *corpus.Entry) { e.Properties = []string{"a b"} }, `property name "a b"`},
		{"data/mismatch", func(e *corpus.Entry) { e.Case.X[0] = 1; e.Case.X[1] = 1 }, "not those of data: seed=1 mode=normal"},
		{"data/nan-payload", func(e *corpus.Entry) {
			e.Data = nil
			e.Case.NonFinite = true
			e.Case.X[0] = float64(math.Float32frombits(0x7fc00001))
		}, "x[0] = nan:0x7fc00001: NaN payload 0x7fc00001 is lost in bf16 storage"},
		{"global/nan-weight", func(e *corpus.Entry) {
			e.Case.Global = &moe.GlobalRouting{IDs: make([]int64, e.Case.S()), Weights: make([]float64, e.Case.S())}
			e.Case.Routing = moe.Routing{IDs: make([]int32, e.Case.S()), Weights: make([]float64, e.Case.S())}
			e.Case.EP = moe.EP{World: 2, Rank: 1}
			for s := range e.Case.Routing.IDs {
				e.Case.Routing.IDs[s] = int32(e.Case.E)
			}
			e.Case.Global.Weights[3] = math.NaN()
			e.Data = nil
		}, "global routing weight nan at token 1 slot 1: routing weights must be finite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := seedEntries(t)[0] // all-sentinel: T=4 H=8 I=8 E=4 K=2 bf16, data seed=1
			tc.change(e)
			var buf bytes.Buffer
			err := corpus.Format(&buf, e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Format: error %v, want it to contain %q", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Fatalf("Format wrote %d bytes before refusing", buf.Len())
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	e := seedEntries(t)[1]
	path := filepath.Join(dir, "x.case")
	if err := corpus.WriteFile(path, e); err != nil {
		t.Fatal(err)
	}
	bad := *e
	bad.Comments = []string{"a\nb"}
	if err := corpus.WriteFile(filepath.Join(dir, "y.case"), &bad); err == nil {
		t.Fatal("WriteFile wrote an entry Format refuses")
	}
	des, _ := os.ReadDir(dir)
	if len(des) != 1 || des[0].Name() != "x.case" {
		t.Fatalf("directory holds %v, want only x.case (no temporary files left)", des)
	}
	p, err := corpus.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e.Name = "x"
	if !p.Equal(e) {
		t.Fatal("WriteFile/ReadFile changed the entry")
	}
	// LoadDir joins every file's error and still returns the good entries.
	os.WriteFile(filepath.Join(dir, "a.case"), []byte("moecheck-case v2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("ignored"), 0o644)
	es, err := corpus.LoadDir(dir)
	if len(es) != 1 || err == nil || !strings.Contains(err.Error(), "a.case:1: unsupported format version") {
		t.Fatalf("LoadDir: %d entries, error %v", len(es), err)
	}
}
