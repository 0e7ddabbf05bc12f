package corpus_test

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moecheck/moecheck/corpus"
	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

var update = flag.Bool("update", false, "rewrite corpus/seeds and the golden files of testdata from the test's entries")

// route is one token's routing: ids and weights, K of each.
type route struct {
	ids []int64
	ws  []float64
}

func rt(ids []int64, ws ...float64) route { return route{ids, ws} }

// seedSpec describes one seed entry.
type seedSpec struct {
	name     string
	comments []string
	cfg      moe.Config
	global   bool
	keep     bool
	routes   []route
	seed     uint64
	mode     moe.DataMode
	explicit func(c *moe.Case) // when set, the tensors are written explicitly after this edit
	poisons  []gpu.Poison
}

func (s seedSpec) entry(t *testing.T) *corpus.Entry {
	t.Helper()
	cfg := s.cfg
	S := cfg.S()
	ids, ws := make([]int64, 0, S), make([]float64, 0, S)
	for _, r := range s.routes {
		ids, ws = append(ids, r.ids...), append(ws, r.ws...)
	}
	var r moe.Routing
	var g *moe.GlobalRouting
	var err error
	if s.global {
		g = &moe.GlobalRouting{IDs: ids, Weights: ws, Options: moe.GlobalOptions{KeepSentinelWeights: s.keep}}
		if r, err = moe.FromGlobal(cfg, ids, ws, g.Options); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	} else {
		r = moe.Routing{IDs: make([]int32, len(ids)), Weights: ws}
		for i, id := range ids {
			r.IDs[i] = int32(id)
		}
	}
	c, err := moe.Generate(cfg, r, s.seed, s.mode)
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	c.Global = g
	e := &corpus.Entry{Name: s.name, Comments: s.comments, Case: c, Data: &corpus.DataSpec{Seed: s.seed, Mode: s.mode}, Poisons: s.poisons}
	if s.explicit != nil {
		s.explicit(c)
		e.Data = nil
	}
	if err := c.Validate(moe.Limits{}); err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	return e
}

// same returns n copies of r.
func same(n int, r route) []route {
	out := make([]route, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func ids(v ...int64) []int64 { return v }

// seedSpecs are the named seed cases of corpus/seeds (go test ./corpus -update rewrites them).
func seedSpecs(t *testing.T) []seedSpec {
	bf := moe.BF16
	small := moe.Config{T: 4, H: 8, I: 8, E: 4, K: 2, DType: bf}
	with := func(c moe.Config, f func(*moe.Config)) moe.Config { f(&c); return c }

	moderate := moe.Config{T: 64, H: 64, I: 32, E: 8, K: 4, DType: bf}
	mr, err := moe.RandomRouting(moderate, 64)
	if err != nil {
		t.Fatal(err)
	}
	var modRoutes []route
	for tk := 0; tk < moderate.T; tk++ {
		var r route
		for k := 0; k < moderate.K; k++ {
			r.ids = append(r.ids, int64(mr.IDs[tk*moderate.K+k]))
			r.ws = append(r.ws, mr.Weights[tk*moderate.K+k])
		}
		modRoutes = append(modRoutes, r)
	}

	return []seedSpec{
		{name: "all-sentinel", cfg: small, routes: same(4, rt(ids(4, 4), 0, 0)), seed: 1,
			comments: []string{"Every slot is a sentinel (id E = 4): this rank owns none of the batch's experts.",
				"No GEMM row is real; y and dX must be exactly zero, every weight gradient exactly zero,",
				"under every poison (the whole buffers are sentinel tail)."}},
		{name: "single-token", cfg: with(small, func(c *moe.Config) { c.T = 1 }), routes: []route{rt(ids(1, 3), 0.75, 0.25)}, seed: 2,
			comments: []string{"One token, two experts: the smallest case with a real combine over K slots."}},
		{name: "one-hot-expert", cfg: with(small, func(c *moe.Config) { c.T = 8 }), seed: 3,
			routes: []route{rt(ids(2, 0), 0.625, 0.375), rt(ids(2, 1), 0.625, 0.375), rt(ids(2, 3), 0.625, 0.375), rt(ids(2, 0), 0.625, 0.375),
				rt(ids(2, 1), 0.625, 0.375), rt(ids(2, 3), 0.625, 0.375), rt(ids(2, 0), 0.625, 0.375), rt(ids(1, 2), 0.5, 0.5)},
			comments: []string{"Imbalanced routing: expert 2 takes every token, the others a few each (FlashInfer's hot1 mode)."}},
		{name: "one-expert-nonempty", cfg: moe.Config{T: 6, H: 8, I: 8, E: 8, K: 1, DType: bf}, seed: 4,
			routes: same(6, rt(ids(5), 1)),
			comments: []string{"Every expert but 5 gets no rows: their dW1, dW2 (and dB) must be exact zeros",
				"(tgale96/grouped_gemm #36, MSLK #158, pytorch #172439; backward hang pytorch #152668)."}},
		{name: "ep-rank7-of-8", cfg: moe.Config{T: 8, H: 8, I: 8, E: 2, K: 4, EP: moe.EP{World: 8, Rank: 7}, DType: bf}, global: true, seed: 5,
			routes: []route{rt(ids(14, 3, 15, 0), 0.5, 0.25, 0.125, 0.125), rt(ids(1, 2, 5, 9), 0.5, 0.25, 0.125, 0.125),
				rt(ids(15, 7, 11, 14), 0.5, 0.25, 0.125, 0.125), rt(ids(4, 6, 8, 10), 0.5, 0.25, 0.125, 0.125),
				rt(ids(14, 12, 13, 2), 0.5, 0.25, 0.125, 0.125), rt(ids(0, 15, 1, 3), 0.5, 0.25, 0.125, 0.125),
				rt(ids(5, 6, 7, 8), 0.5, 0.25, 0.125, 0.125), rt(ids(15, 14, 13, 12), 0.5, 0.25, 0.125, 0.125)},
			comments: []string{"Expert parallelism: rank 7 of 8 owns global experts 14 and 15 (local offset 14 > 0;",
				"flashinfer #3547 returned zeros for shards with offset > 0). Routing is given in global ids;",
				"the router hook maps them (non-local slots become sentinel 2 with weight 0)."}},
		{name: "duplicate-topk", cfg: with(small, func(c *moe.Config) { c.K = 4 }), seed: 6,
			routes: []route{rt(ids(1, 1, 1, 2), 0.25, 0.25, 0.25, 0.25), rt(ids(0, 0, 3, 3), 0.25, 0.25, 0.25, 0.25),
				rt(ids(2, 2, 2, 2), 0.25, 0.25, 0.25, 0.25), rt(ids(3, 1, 3, 1), 0.25, 0.25, 0.25, 0.25)},
			comments: []string{"Duplicate ids in a token's top-k (NaN router logits give them: vLLM #39244).",
				"Each duplicate is its own row; the combine sums them."}},
		{name: "gptoss-bias-transposed", seed: 7,
			cfg:    moe.Config{T: 4, H: 16, I: 8, E: 4, K: 2, Act: moe.GptOss, Layout: moe.Transposed, Bias: true, DType: bf},
			routes: []route{rt(ids(0, 3), 0.5, 0.5), rt(ids(1, 2), 0.75, 0.25), rt(ids(3, 4), 0.875, 0), rt(ids(2, 0), 0.625, 0.375)},
			comments: []string{"gpt-oss layer shape: interleaved gate/up with clamps, biases, transposed weights",
				"(E×H×2I and E×I×H). Token 2's second slot is a sentinel: its bias rows must not leak."}},
		{name: "routed-nowhere-mixed", cfg: with(small, func(c *moe.Config) { c.T = 6 }), seed: 8,
			routes: []route{rt(ids(0, 1), 0.5, 0.5), rt(ids(4, 4), 0, 0), rt(ids(2, 3), 0.75, 0.25),
				rt(ids(4, 4), 0, 0), rt(ids(4, 4), 0, 0), rt(ids(1, 4), 1, 0)},
			comments: []string{"Tokens 1, 3 and 4 are routed nowhere on this rank (all sentinels) between real ones:",
				"their y rows must be exactly zero, their dX rows too, while their neighbours are computed."}},
		{name: "sentinel-nonzero-weights", cfg: small, seed: 9,
			routes: []route{rt(ids(4, 1), 0.5, 0.5), rt(ids(0, 4), 0.75, -1), rt(ids(4, 4), 1, 0.25), rt(ids(2, 3), 0.5, 0.5)},
			comments: []string{"Sentinel slots carrying nonzero routing weights (frameworks with −1 sentinels keep",
				"the router's weight). Contract: a sentinel slot contributes nothing whatever its weight;",
				"clamping sentinels to E−1 (transformers #45473) makes them count."}},
		{name: "sentinel-weights-global-keep", cfg: moe.Config{T: 4, H: 8, I: 8, E: 2, K: 2, EP: moe.EP{World: 2, Rank: 1}, DType: bf},
			global: true, keep: true, seed: 10,
			routes: []route{rt(ids(0, 3), 0.5, 0.5), rt(ids(1, 0), 0.75, 0.25), rt(ids(2, 3), 0.5, 0.5), rt(ids(1, 2), 0.25, 0.75)},
			comments: []string{"Global routing mapped with KeepSentinelWeights: non-local slots keep the router's weight",
				"(rank 1 of 2 owns global experts 2 and 3)."}},
		{name: "integer-exact", cfg: moe.Config{T: 2, H: 4, I: 2, E: 2, K: 2, DType: bf}, seed: 11, mode: moe.Integer,
			routes:   []route{rt(ids(0, 1), 1, 1), rt(ids(1, 2), 1, 0)},
			explicit: func(*moe.Case) {},
			comments: []string{"Integer data (|v| ≤ 2) and unit weights: every fp32 accumulation is exact, so the GEMM",
				"outputs match the float64 reference bit for bit up to the activation. Tensors written out."}},
		{name: "large-k-few-experts", cfg: moe.Config{T: 4, H: 8, I: 8, E: 2, K: 8, DType: bf}, seed: 12,
			routes: []route{rt(ids(0, 1, 0, 1, 0, 1, 0, 1), 0.125, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125),
				rt(ids(0, 0, 0, 0, 0, 0, 0, 0), 0.125, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125),
				rt(ids(1, 2, 1, 2, 1, 2, 1, 2), 0.25, 0, 0.25, 0, 0.25, 0, 0.25, 0),
				rt(ids(2, 2, 2, 2, 2, 2, 2, 1), 0, 0, 0, 0, 0, 0, 0, 1)},
			comments: []string{"Top-k larger than the number of experts (K = 8, E = 2): most slots are duplicates,",
				"S = 32 rows over 2 experts and a sentinel tail."}},
		{name: "odd-sizes", cfg: moe.Config{T: 5, H: 13, I: 7, E: 3, K: 2, DType: moe.FP16}, seed: 13,
			routes: []route{rt(ids(0, 1), 0.5, 0.5), rt(ids(2, 0), 0.75, 0.25), rt(ids(1, 3), 1, 0), rt(ids(2, 2), 0.5, 0.5), rt(ids(0, 2), 0.25, 0.75)},
			comments: []string{"H = 13 and I = 7 are not multiples of 8 (nor of any tile): partial tiles everywhere",
				"(vLLM PR #49087 dropped the last partial block). fp16."}},
		{name: "subnormal-fp32", cfg: moe.Config{T: 4, H: 8, I: 8, E: 2, K: 2, DType: moe.FP32}, seed: 14, mode: moe.Subnormal,
			routes:   []route{rt(ids(0, 1), 0.5, 0.5), rt(ids(1, 2), 1, 0), rt(ids(0, 0), 0.25, 0.75), rt(ids(2, 1), 0, 1)},
			comments: []string{"A quarter of the hidden states and weights are fp32 subnormals (flush-to-zero shows)."}},
		{name: "nonfinite-values", cfg: moe.Config{T: 2, H: 4, I: 2, E: 1, K: 1, DType: moe.FP16}, seed: 15, mode: moe.Integer,
			routes: []route{rt(ids(0), 1), rt(ids(1), 0)},
			explicit: func(c *moe.Case) {
				nan := func(b uint32) float64 { return float64(math.Float32frombits(b)) }
				c.NonFinite = true
				copy(c.X, []float64{nan(0x7fc00000), math.Inf(1), math.Copysign(0, -1), math.Ldexp(1, -24)})
				copy(c.X[4:], []float64{nan(0x7fd50000), nan(0xffc00000), 65504, -math.Ldexp(1, -14)})
				c.W1[0] = math.Inf(-1)
			},
			poisons: []gpu.Poison{gpu.PoisonSignature, gpu.PoisonNaN},
			comments: []string{"Non-finite and special data: NaNs (one with a payload), ±Inf, −0, subnormals, ±max.",
				"Token 1 is routed nowhere: its outputs stay exactly zero even though its x row holds NaN."}},
		{name: "moderate", cfg: moderate, seed: 64, routes: modRoutes,
			comments: []string{"A moderately larger case: T=64 H=64 I=32 E=8 K=4, uniform random routing",
				"(moe.RandomRouting(cfg, 64)), data by seed."}},
	}
}

func seedEntries(t *testing.T) []*corpus.Entry {
	var out []*corpus.Entry
	for _, s := range seedSpecs(t) {
		out = append(out, s.entry(t))
	}
	return out
}

// TestSeeds checks that corpus/seeds holds exactly the entries above, each as Format writes
// it (the seeds are Format's golden files), and that each parses back equal.
// go test ./corpus -run TestSeeds -update rewrites them.
func TestSeeds(t *testing.T) {
	entries := seedEntries(t)
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name+corpus.Ext] = true
		path := filepath.Join("seeds", e.Name+corpus.Ext)
		t.Run("seed/"+e.Name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := corpus.Format(&buf, e); err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := corpus.WriteFile(path, e); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./corpus -run TestSeeds -update)", err)
			}
			if !bytes.Equal(got, buf.Bytes()) {
				t.Fatalf("%s differs from Format of its entry (run go test ./corpus -run TestSeeds -update):\n%s", path, firstDiff(string(got), buf.String()))
			}
			p, err := corpus.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Equal(e) {
				t.Fatalf("%s parses to a different entry", path)
			}
			c := p.Case
			if c.Elements() > 64*64*2+8*32*64*3+64*4 {
				t.Fatalf("%s is larger than the moderate case", path)
			}
		})
	}
	des, err := os.ReadDir("seeds")
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if !names[de.Name()] {
			t.Errorf("seeds/%s is not produced by seedSpecs (remove it or add it there)", de.Name())
		}
	}
}

func TestLoadDirSeeds(t *testing.T) {
	es, err := corpus.LoadDir("seeds")
	if err != nil {
		t.Fatal(err)
	}
	want := seedEntries(t)
	if len(es) != len(want) {
		t.Fatalf("LoadDir: %d entries, want %d", len(es), len(want))
	}
	for i := 1; i < len(es); i++ {
		if es[i-1].Name >= es[i].Name {
			t.Fatalf("LoadDir: %s before %s, want sorted by name", es[i-1].Name, es[i].Name)
		}
	}
}

// Every seed that fits the default decode limits encodes to fuzz bytes that decode back to it.
func TestSeedsAsFuzzBytes(t *testing.T) {
	for _, e := range seedEntries(t) {
		t.Run("seed/"+e.Name, func(t *testing.T) {
			b, err := e.Bytes(moe.DecodeLimits{})
			if e.Name == "moderate" {
				if err == nil || !strings.Contains(err.Error(), "exceeds the decode limit") {
					t.Fatalf("moderate seed: error %v, want a decode limit", err)
				}
				b, err = e.Bytes(moe.DecodeLimits{MaxT: 64, MaxH: 64, MaxI: 32})
			}
			if err != nil {
				t.Fatal(err)
			}
			got := corpus.FromBytes(e.Name, b, moe.DecodeLimits{MaxT: 64, MaxH: 64, MaxI: 32})
			if !moe.EqualCases(got.Case, e.Case) {
				t.Fatalf("%s: bytes decode to a different case", e.Name)
			}
			if len(e.Poisons) > 0 && got.Poisons[0] != e.Poisons[0] {
				t.Fatalf("%s: poison %v, want %v", e.Name, got.Poisons[0], e.Poisons[0])
			}
			if (e.Data != nil) != (got.Data != nil) || e.Data != nil && *e.Data != *got.Data {
				t.Fatalf("%s: data %+v, want %+v", e.Name, got.Data, e.Data)
			}
		})
	}
}

// firstDiff shows the first differing line of two texts.
func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i] != lb[i] {
			return "line " + strconv.Itoa(i+1) + ":\n  file:   " + la[i] + "\n  Format: " + lb[i]
		}
	}
	return "lengths differ: " + strconv.Itoa(len(la)) + " vs " + strconv.Itoa(len(lb)) + " lines"
}
