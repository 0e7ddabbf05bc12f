package corpus_test

import (
	"github.com/moecheck/moecheck/internal/fault"
	"math"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Line numbers of base: 1 header, 2 comment, 3 shape, 4 dtype, 5 routing, 6 tok 0, 7 tok 1,
// 8 data.
var base = []string{
	"moecheck-case v1",
	"# base case of the parser tests",
	"shape: T=2 H=2 I=2 E=2 K=2",
	"dtype: bf16",
	"routing: local",
	"tok 0: 0:0.5 1:0.5",
	"tok 1: 2:0 1:1",
	"data: seed=1 mode=normal",
}

// Line numbers of explicit: 1 header, 2 shape, 3 dtype, 4 routing, 5 tok 0, 6 x, 7 w1, 8 w2,
// 9 dy.
var explicit = []string{
	"moecheck-case v1",
	"shape: T=1 H=2 I=1 E=1 K=1",
	"dtype: bf16",
	"routing: local",
	"tok 0: 0:1",
	"x: 1 2",
	"w1: 1 -1 0.5 2",
	"w2: 1 1",
	"dy: 1 -0",
}

type edit func([]string) []string

func set(n int, s string) edit {
	return func(l []string) []string { l[n-1] = s; return l }
}
func del(n int) edit {
	return func(l []string) []string { return append(l[:n-1], l[n:]...) }
}
func add(s ...string) edit {
	return func(l []string) []string { return append(l, s...) }
}

func text(lines []string, edits ...edit) string {
	l := append([]string(nil), lines...)
	for _, e := range edits {
		l = e(l)
	}
	return strings.Join(l, "\n") + "\n"
}

func TestParseValid(t *testing.T) {
	e, err := corpus.Parse(strings.NewReader(text(base)), "dir/f.case")
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "f" || len(e.Comments) != 1 || e.Comments[0] != "base case of the parser tests" || e.Data == nil || e.Data.Seed != 1 {
		t.Fatalf("entry %+v", e)
	}
	c := e.Case
	if c.Config != (moe.Config{T: 2, H: 2, I: 2, E: 2, K: 2}) || c.Routing.IDs[2] != 2 || c.Routing.Weights[3] != 1 {
		t.Fatalf("case %s %v", c.Config, c.Routing)
	}
	e, err = corpus.Parse(strings.NewReader(text(explicit, add("poison: nan,+inf", "faults: clamp-sentinel", "properties: a,b"))), "g.case")
	if err != nil {
		t.Fatal(err)
	}
	if e.Data != nil || e.Case.W1[2] != 0.5 || !math.Signbit(e.Case.DY[1]) || len(e.Poisons) != 2 || e.Poisons[1] != gpu.PoisonPosInf ||
		!e.Faults.Has(fault.ClampSentinel) || len(e.Properties) != 2 {
		t.Fatalf("explicit entry %+v", e)
	}
	// CRLF line ends, blank lines, indentation, hex floats, aliases.
	crlf := strings.ReplaceAll(text(explicit, set(6, "  x: 0x1p0   0x1p1"), set(3, "dtype: bfloat16"), add("", "   ")), "\n", "\r\n")
	e, err = corpus.Parse(strings.NewReader(crlf), "h.case")
	if err != nil {
		t.Fatal(err)
	}
	if e.Case.X[0] != 1 || e.Case.X[1] != 2 {
		t.Fatalf("hex floats: %v", e.Case.X)
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("1 ", corpus.MaxLine/2+1)
	for _, tc := range []struct {
		name string
		in   string
		lim  moe.Limits
		want string // the error must contain "f.case:" + want
	}{
		{"header/empty", "", moe.Limits{}, `1: empty file (want the header line "moecheck-case v1")`},
		{"header/missing", text(base, set(1, "shape: T=1")), moe.Limits{}, `1: missing header line "moecheck-case v1" (got "shape: T=1")`},
		{"header/version", text(base, set(1, "moecheck-case v2")), moe.Limits{}, `1: unsupported format version "v2" (this moecheck reads v1)`},
		{"line/no-colon", text(base, add("garbage")), moe.Limits{}, `9: want "key: value" or a "# comment", got "garbage"`},
		{"line/control", text(base, add("# a\x00b")), moe.Limits{}, "9: control character U+0000 in line"},
		{"line/cr-inside", text(base, add("# a\rb")), moe.Limits{}, "9: control character U+000D in line"},
		{"line/c1-control", text(base, add("# a\u0085b")), moe.Limits{}, "9: control character U+0085 in line"},
		{"line/utf8", text(base, add("# \xff")), moe.Limits{}, "9: not UTF-8 text"},
		{"line/too-long", text(base, add("x: "+long)), moe.Limits{}, "9: line longer than 16 MiB"},
		{"key/unknown", text(base, add("foo: 1")), moe.Limits{}, `9: unknown key "foo" (known: shape, dtype`},
		{"key/duplicate", text(base, add("dtype: fp16")), moe.Limits{}, "9: dtype given twice (first on line 4)"},
		{"shape/missing", text(base, del(3)), moe.Limits{}, `7: missing "shape:" line`},
		{"shape/limit-T", text(base, set(3, "shape: T=100000 H=2 I=2 E=2 K=2")), moe.Limits{}, "3: shape: moe: T (tokens) = 100000 exceeds the limit 65536"},
		{"shape/limit-custom", text(base, set(3, "shape: T=2 H=200 I=2 E=2 K=2")), moe.Limits{MaxH: 64}, "3: shape: moe: H (hidden) = 200 exceeds the limit 64"},
		{"shape/limit-elements", text(base, set(3, "shape: T=65536 H=32768 I=2 E=2 K=2")), moe.Limits{}, "3: shape: moe: case holds 4295491584 values"},
		{"shape/limit-elements-custom", text(base), moe.Limits{MaxElements: 30}, "3: shape: moe: case holds 36 values (0 MiB as float64), over the limit of 30 values"},
		{"shape/zero", text(base, set(3, "shape: T=0 H=2 I=2 E=2 K=2")), moe.Limits{}, "3: shape: moe: T (tokens) = 0: must be at least 1"},
		{"shape/negative", text(base, set(3, "shape: T=2 H=-3 I=2 E=2 K=2")), moe.Limits{}, "3: shape: moe: H (hidden) = -3: must be at least 1"},
		{"shape/missing-field", text(base, set(3, "shape: T=2 H=2 I=2 E=2")), moe.Limits{}, "3: shape: missing K="},
		{"shape/not-int", text(base, set(3, "shape: T=two H=2 I=2 E=2 K=2")), moe.Limits{}, `3: shape: T="two": want a decimal integer`},
		{"shape/overflow", text(base, set(3, "shape: T=99999999999999999999 H=2 I=2 E=2 K=2")), moe.Limits{}, `3: shape: T="99999999999999999999": want a decimal integer`},
		{"shape/unknown-field", text(base, set(3, "shape: T=2 H=2 I=2 E=2 K=2 X=1")), moe.Limits{}, `3: shape: unknown field "X" (want T, H, I, E, K)`},
		{"shape/duplicate-field", text(base, set(3, "shape: T=2 T=2 H=2 I=2 E=2 K=2")), moe.Limits{}, "3: shape: T given twice"},
		{"shape/not-kv", text(base, set(3, "shape: 2 2 2 2 2")), moe.Limits{}, `3: shape: "2" is not key=value`},
		{"dtype/unknown", text(base, set(4, "dtype: fp8")), moe.Limits{}, `4: dtype: moe: unknown dtype "fp8"`},
		{"act/unknown", text(base, add("act: relu")), moe.Limits{}, `9: act: moe: unknown activation "relu"`},
		{"layout/unknown", text(base, add("layout: diagonal")), moe.Limits{}, `9: layout: moe: unknown layout "diagonal"`},
		{"bias/not-bool", text(base, add("bias: maybe")), moe.Limits{}, `9: bias: "maybe" is not yes or no`},
		{"ep/world-limit", text(base, add("ep: rank=0 world=2000")), moe.Limits{}, "9: ep: world=2000 outside [1, 1024] (the limit MaxWorld)"},
		{"ep/world-zero", text(base, add("ep: rank=0 world=0")), moe.Limits{}, "9: ep: world=0 outside [1, 1024]"},
		{"ep/rank", text(base, add("ep: rank=2 world=2")), moe.Limits{}, "9: ep: rank=2 outside [0, 2) for world=2"},
		{"ep/global-experts", text(base, set(3, "shape: T=2 H=2 I=2 E=4096 K=2"), add("ep: rank=0 world=1024")), moe.Limits{},
			"3: shape: moe: global experts E·W = 4096·1024 exceeds the limit 65536"},
		{"routing/missing", text(base, del(5)), moe.Limits{}, `7: missing "routing:" line`},
		{"routing/unknown", text(base, set(5, "routing: both")), moe.Limits{}, `5: routing: "both" is not local or global`},
		{"routing/missing-token", text(base, del(7)), moe.Limits{}, `5: routing: no line for token 1 (want "tok 0:" to "tok 1:", one per token)`},
		{"tok/duplicate", text(base, add("tok 1: 0:1 0:1")), moe.Limits{}, "9: tok 1 given twice (first on line 7)"},
		{"tok/outside", text(base, add("tok 2: 0:1 1:1")), moe.Limits{}, "9: tok 2 outside [0, 2) (T = 2)"},
		{"tok/number", text(base, add("tok x: 0:1 1:1")), moe.Limits{}, `9: token number "x": want a decimal integer ≥ 0`},
		{"tok/number-sign", text(base, add("tok +1: 0:1 1:1")), moe.Limits{}, `9: token number "+1"`},
		{"tok/count", text(base, set(6, "tok 0: 0:0.5")), moe.Limits{}, "6: tok 0: 1 id:weight pairs, want K = 2"},
		{"tok/not-pair", text(base, set(6, "tok 0: 0 1:0.5")), moe.Limits{}, `6: tok 0 slot 0: "0" is not id:weight`},
		{"tok/id-range", text(base, set(6, "tok 0: 3:0.5 1:0.5")), moe.Limits{}, "6: tok 0 slot 0: expert id 3 outside [0, 2] (local experts 0..1, sentinel 2)"},
		{"tok/id-negative", text(base, set(6, "tok 0: 0:0.5 -1:0.5")), moe.Limits{}, "6: tok 0 slot 1: expert id -1 outside [0, 2]"},
		{"tok/id-syntax", text(base, set(6, "tok 0: e1:0.5 1:0.5")), moe.Limits{}, `6: tok 0 slot 0: expert id "e1": want a decimal integer`},
		{"tok/global-id-range", text(base, set(5, "routing: global")), moe.Limits{}, "7: tok 1 slot 0: global expert id 2 outside [0, 2) (G = E·W = 2·1)"},
		{"weight/syntax", text(base, set(6, "tok 0: 0:abc 1:0.5")), moe.Limits{}, `6: tok 0 slot 0: routing weight "abc": invalid syntax`},
		{"weight/nan", text(base, set(6, "tok 0: 0:nan 1:0.5")), moe.Limits{}, `6: tok 0 slot 0: routing weight "nan": routing weights must be finite`},
		{"weight/nan-bits", text(base, set(6, "tok 0: 0:nan:0x7fc10000 1:0.5")), moe.Limits{}, `6: tok 0 slot 0: routing weight "nan:0x7fc10000": routing weights must be finite`},
		{"weight/inf", text(base, set(6, "tok 0: 0:0.5 1:-inf")), moe.Limits{}, `6: tok 0 slot 1: routing weight "-inf": routing weights must be finite`},
		{"weight/infinity", text(base, set(6, "tok 0: 0:0.5 1:Infinity")), moe.Limits{}, `6: tok 0 slot 1: routing weight "Infinity": invalid syntax`},
		{"weight/not-dtype", text(base, set(6, "tok 0: 0:0.1 1:0.5")), moe.Limits{}, `6: tok 0 slot 0: routing weight "0.1": not a bf16 value (nearest 0.10009765625)`},
		{"weight/range", text(base, set(6, "tok 0: 0:1e400 1:0.5")), moe.Limits{}, `6: tok 0 slot 0: routing weight "1e400": out of the float64 range`},
		{"keep/local", text(base, add("keep-sentinel-weights: yes")), moe.Limits{}, "9: keep-sentinel-weights applies to global routing only (routing: local on line 5)"},
		{"data/missing", text(base, del(8)), moe.Limits{}, `7: no data: want a "data: seed=<n> mode=<m>" line or the tensors`},
		{"data/mode", text(base, set(8, "data: seed=1 mode=weird")), moe.Limits{}, `8: data: mode "weird": want normal, integer, large or subnormal`},
		{"data/seed", text(base, set(8, "data: seed=-1 mode=normal")), moe.Limits{}, `8: data: seed "-1": want a decimal integer in [0, 2^64)`},
		{"data/missing-field", text(base, set(8, "data: seed=1")), moe.Limits{}, "8: data: want seed=<n> mode=<normal|integer|large|subnormal>"},
		{"data/both", text(base, add("x: 1 2 3 4")), moe.Limits{}, `9: x: tensor values and "data:" (line 8) both given; use one`},
		{"tensor/few", text(explicit, set(6, "x: 1")), moe.Limits{}, "6: x has 1 values, want 2 (X (hidden) for T=1 H=2 I=1 E=1 K=1"},
		{"tensor/many", text(explicit, add("w2: 1")), moe.Limits{}, "10: w2 has more than 2 values (W2 (down_proj)"},
		{"tensor/missing", text(explicit, del(8)), moe.Limits{}, "8: missing tensor w2 (W2 (down_proj), 2 values)"},
		{"tensor/bias-off", text(explicit, add("b1: 1 1")), moe.Limits{}, "10: b1 given but the case has no biases (bias: no)"},
		{"tensor/bias-missing", text(explicit, add("bias: yes")), moe.Limits{}, "10: missing tensor b1 (B1 (gate_up bias), 2 values)"},
		{"tensor/nonfinite", text(explicit, set(6, "x: 1 nan")), moe.Limits{}, `6: x[1] "nan": non-finite values need "nonfinite: yes"`},
		{"tensor/inf", text(explicit, set(9, "dy: -inf 1")), moe.Limits{}, `9: dy[0] "-inf": non-finite values need "nonfinite: yes"`},
		{"tensor/not-dtype", text(explicit, set(7, "w1: 1 1 1 1.001")), moe.Limits{}, `7: w1[3] "1.001": not a bf16 value (nearest 1)`},
		{"tensor/syntax", text(explicit, set(7, "w1: 1 1 1 1,")), moe.Limits{}, `7: w1[3] "1,": invalid syntax`},
		{"tensor/nan-payload", text(explicit, set(6, "x: 1 nan:0x7fc00001"), add("nonfinite: yes")), moe.Limits{},
			`6: x[1] "nan:0x7fc00001": NaN payload 0x7fc00001 is lost in bf16 storage`},
		{"tensor/nan-payload-fp16", text(explicit, set(6, "x: 1 nan:0x7fc01000"), set(3, "dtype: fp16"), add("nonfinite: yes")), moe.Limits{},
			`6: x[1] "nan:0x7fc01000": NaN payload 0x7fc01000 is lost in fp16 storage`},
		{"tensor/snan", text(explicit, set(6, "x: 1 nan:0x7f810000"), add("nonfinite: yes")), moe.Limits{},
			`6: x[1] "nan:0x7f810000": float32 bits 0x7f810000 are a signaling NaN`},
		{"tensor/nan-bits-not-nan", text(explicit, set(6, "x: 1 nan:0x3f800000"), add("nonfinite: yes")), moe.Limits{},
			`6: x[1] "nan:0x3f800000": float32 bits 0x3f800000 are not a NaN`},
		{"tensor/nan-bits-syntax", text(explicit, set(6, "x: 1 nan:7fc00000"), add("nonfinite: yes")), moe.Limits{},
			`6: x[1] "nan:7fc00000": NaN bits "7fc00000": want nan:0x followed by 8 hex digits`},
		{"nonfinite/not-bool", text(explicit, add("nonfinite: perhaps")), moe.Limits{}, `10: nonfinite: "perhaps" is not yes or no`},
		{"poison/unknown", text(base, add("poison: purple")), moe.Limits{}, `9: poison: gpu: unknown poison policy "purple"`},
		{"poison/empty", text(base, add("poison:")), moe.Limits{}, `9: poison: gpu: unknown poison policy ""`},
		{"faults/unknown", text(base, add("faults: gremlins")), moe.Limits{}, `9: faults: unknown fault "gremlins"`},
		{"properties/bad", text(base, add("properties: ok,not ok")), moe.Limits{}, `9: properties: property name "not ok"`},
		{"properties/empty", text(base, add("properties: a,,b")), moe.Limits{}, "9: properties: empty property name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := corpus.ParseWith(strings.NewReader(tc.in), "f.case", corpus.ParseOptions{Limits: tc.lim})
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", e)
			}
			if want := "f.case:" + tc.want; !strings.Contains(err.Error(), want) {
				t.Fatalf("error\n  %v\nwant it to contain\n  %s", err, want)
			}
		})
	}
}

// Comments keep their text after "#" and one space, whatever whitespace precedes the "#".
func TestParseComments(t *testing.T) {
	in := text(base, add("\u00a0\t#  two spaces", "#", "#tight", "# trailing  "))
	e, err := corpus.Parse(strings.NewReader(in), "f.case")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"base case of the parser tests", " two spaces", "", "tight", "trailing  "}
	if strings.Join(e.Comments, "|") != strings.Join(want, "|") {
		t.Fatalf("comments %q, want %q", e.Comments, want)
	}
}
