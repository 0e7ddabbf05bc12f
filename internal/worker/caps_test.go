package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/moe"
)

// helperServeOptions: the helper worker's protocol version and capabilities come from
// MOECHECK_WORKER_HELPER_VERSION and MOECHECK_WORKER_HELPER_CAPS (JSON).
func helperServeOptions() ServeOptions {
	o := ServeOptions{Device: "test helper"}
	if v, err := strconv.Atoi(os.Getenv("MOECHECK_WORKER_HELPER_VERSION")); err == nil {
		o.Version = v
	}
	if s := os.Getenv("MOECHECK_WORKER_HELPER_CAPS"); s != "" {
		o.Capabilities = &Capabilities{}
		if err := json.Unmarshal([]byte(s), o.Capabilities); err != nil {
			panic(err)
		}
	}
	return o
}

func helperWith(t *testing.T, version int, caps *Capabilities) gpu.Backend {
	t.Helper()
	env := append(os.Environ(), "MOECHECK_WORKER_HELPER=1", "MOECHECK_WORKER_HELPER_VERSION="+strconv.Itoa(version))
	if caps != nil {
		b, err := json.Marshal(caps)
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, "MOECHECK_WORKER_HELPER_CAPS="+string(b))
	}
	b, err := New(Options{Command: []string{os.Args[0], "-test.run=^$"}, Env: env, Timeout: time.Minute, StartTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// torchCaps is what the Python worker declares for transformers:grouped_mm.
func torchCaps() *Capabilities {
	return &Capabilities{DTypes: []string{"bf16"}, Variants: []Variant{{"swiglu", "standard", false}, {"gptoss", "transposed", true}},
		Align: map[string]Align{"bf16": {8, 8}}, NonFinite: true, Poisons: []string{"zeros", "nan"}, Triage: true, Faults: []string{}, Contract: "torch"}
}

func TestCapabilitiesSupports(t *testing.T) {
	caps := torchCaps()
	base := moe.Config{T: 2, H: 8, I: 16, E: 2, K: 2, DType: moe.BF16, Act: moe.SwiGLU, Layout: moe.Standard}
	for _, tc := range []struct {
		name   string
		cfg    func(*moe.Config)
		global bool
		o      gpu.RunOptions
		faults fault.Set
		want   string // "" = supported, else a substring of the reason
	}{
		{"ok/swiglu", func(*moe.Config) {}, false, gpu.RunOptions{Poison: gpu.PoisonNaN}, 0, ""},
		{"ok/gptoss", func(c *moe.Config) { c.Act, c.Layout, c.Bias = moe.GptOss, moe.Transposed, true }, false, gpu.RunOptions{}, 0, ""},
		{"dtype", func(c *moe.Config) { c.DType = moe.FP32 }, false, gpu.RunOptions{}, 0, "dtype fp32"},
		{"variant/bias", func(c *moe.Config) { c.Bias = true }, false, gpu.RunOptions{}, 0, "variant swiglu/standard/bias=true"},
		{"variant/layout", func(c *moe.Config) { c.Layout = moe.Transposed }, false, gpu.RunOptions{}, 0, "variant"},
		{"align/h", func(c *moe.Config) { c.H = 12 }, false, gpu.RunOptions{}, 0, "multiple of 8"},
		{"align/i", func(c *moe.Config) { c.I = 4 }, false, gpu.RunOptions{}, 0, "multiple of 8"},
		{"global", func(*moe.Config) {}, true, gpu.RunOptions{}, 0, "global routing"},
		{"poison", func(*moe.Config) {}, false, gpu.RunOptions{Poison: gpu.PoisonStale}, 0, "poison stale"},
		{"fault", func(*moe.Config) {}, false, gpu.RunOptions{}, fault.Of(fault.ClampSentinel), "fault clamp-sentinel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.cfg(&cfg)
			err := caps.SupportsConfig(cfg, tc.global, false)
			if err == nil {
				err = caps.SupportsOptions(tc.o, tc.faults)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want supported", err)
				}
				return
			}
			u, ok := gpu.IsUnsupported(err)
			if !ok || !strings.Contains(u.Reason, tc.want) {
				t.Fatalf("err = %v, want unsupported with %q", err, tc.want)
			}
		})
	}
	var none *Capabilities
	if err := none.SupportsConfig(base, true, true); err != nil {
		t.Errorf("nil capabilities: %v, want everything supported", err)
	}
}

func TestCapabilitiesValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Capabilities
		want string
	}{
		{"ok", *torchCaps(), ""},
		{"dtype", Capabilities{DTypes: []string{"fp8"}}, "fp8"},
		{"act", Capabilities{Variants: []Variant{{"gelu", "standard", false}}}, "gelu"},
		{"align", Capabilities{Align: map[string]Align{"bf16": {0, 8}}}, "align"},
		{"poison", Capabilities{Poisons: []string{"pink"}}, "pink"},
		{"fault", Capabilities{Faults: []string{"no-such-fault"}}, "no-such-fault"},
		{"contract", Capabilities{Contract: "loose"}, "loose"},
		{"contract-modifier-ok", Capabilities{Contract: "torch+bf16-reduced-precision-reduction"}, ""},
		{"contract-modifier-unknown", Capabilities{Contract: "torch+fast-math"}, "fast-math"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// The version-2 case header is snake_case; a version-1 header keeps T, H, I, E, K; both decode.
func TestCaseHeaderKeys(t *testing.T) {
	h := CaseHeader{T: 1, H: 2, I: 3, E: 4, K: 5, EPWorld: 1, Act: "swiglu", Layout: "standard", DType: "bf16"}
	for _, tc := range []struct {
		name   string
		legacy bool
		want   []string
		absent []string
	}{
		{"v2", false, []string{`"t":1`, `"h":2`, `"i":3`, `"e":4`, `"k":5`, `"ep_world":1`}, []string{`"T"`, `"Legacy"`}},
		{"v1", true, []string{`"T":1`, `"H":2`, `"I":3`, `"E":4`, `"K":5`, `"ep_world":1`}, []string{`"t"`, `"Legacy"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hh := h
			hh.Legacy = tc.legacy
			b, err := json.Marshal(&Header{Type: TypeRun, Case: &hh})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !bytes.Contains(b, []byte(w)) {
					t.Errorf("%s lacks %s", b, w)
				}
			}
			for _, w := range tc.absent {
				if bytes.Contains(b, []byte(w)) {
					t.Errorf("%s has %s", b, w)
				}
			}
			var back Header
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if back.Case.T != 1 || back.Case.H != 2 || back.Case.I != 3 || back.Case.E != 4 || back.Case.K != 5 {
				t.Errorf("decoded %+v", back.Case)
			}
		})
	}
}

// A version-1 worker still works; a version-2 worker's capabilities are enforced by the
// client (unsupported, nothing sent), "raised" is a case error and the worker lives on.
func TestClientVersionsAndCapabilities(t *testing.T) {
	c := testCase(t, moe.BF16, true, false) // gpt-oss, transposed, bias, H=8, I=4
	t.Run("v1", func(t *testing.T) {
		b := helperWith(t, 1, nil)
		if _, err := b.Run(context.Background(), c, gpu.RunOptions{}); err != nil {
			t.Fatal(err)
		}
		if CapabilitiesOf(b) != nil {
			t.Error("a version-1 worker has capabilities")
		}
		if got := gpu.ContractOf(b).String(); got != "exact" {
			t.Errorf("a version-1 worker's contract = %s, want exact", got)
		}
	})
	t.Run("v2/contract", func(t *testing.T) {
		b := helperWith(t, 2, torchCaps()) // declares "torch"
		if got := gpu.ContractOf(b).String(); got != "torch" {
			t.Errorf("contract = %s, want torch (from the hello)", got)
		}
	})
	t.Run("v2/unsupported", func(t *testing.T) {
		b := helperWith(t, 2, torchCaps())
		_, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN})
		if u, ok := gpu.IsUnsupported(err); !ok || !strings.Contains(u.Reason, "I=4") {
			t.Fatalf("err = %v, want unsupported (I=4 not a multiple of 8)", err)
		}
	})
	t.Run("v2/raised", func(t *testing.T) {
		caps := torchCaps()
		caps.Align = nil
		b := helperWith(t, 2, caps)
		_, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN, PoisonSeed: seedRaised})
		ce, ok := gpu.AsCaseError(err)
		if !ok || ce.Kind != gpu.Raised || !strings.Contains(ce.Detail, "ValueError: fake") {
			t.Fatalf("err = %v, want a raised case error", err)
		}
		if _, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN}); err != nil {
			t.Fatalf("after raised: %v", err)
		}
		if _, _, restarts, _ := Info(b); restarts != 0 {
			t.Errorf("restarts = %d, want 0 (the worker stays alive after raised)", restarts)
		}
		// The worker writes the traceback to its stderr before the error frame, but the
		// client copies stderr on its own goroutine: wait for the copy (a loaded machine).
		tail := StderrTail(b)
		for end := time.Now().Add(5 * time.Second); !strings.Contains(tail, "Traceback") && time.Now().Before(end); tail = StderrTail(b) {
			time.Sleep(10 * time.Millisecond)
		}
		if !strings.Contains(tail, "Traceback") {
			t.Errorf("stderr tail %q lacks the traceback", tail)
		}
	})
	t.Run("v2/bad-capabilities", func(t *testing.T) {
		env := append(os.Environ(), "MOECHECK_WORKER_HELPER=1", `MOECHECK_WORKER_HELPER_CAPS={"dtypes":["fp8"]}`)
		_, err := New(Options{Command: []string{os.Args[0], "-test.run=^$"}, Env: env, StartTimeout: 30 * time.Second})
		if err == nil || !strings.Contains(err.Error(), "fp8") {
			t.Fatalf("err = %v, want a capabilities error", err)
		}
	})
}

// A worker that declares sentinels=false refuses cases with a sentinel id (counted as
// unsupported); absent or true takes them; the JSON key is "sentinels".
func TestCapabilitiesSentinels(t *testing.T) {
	cfg := moe.Config{T: 2, H: 8, I: 16, E: 2, K: 2, DType: moe.BF16, Act: moe.SwiGLU, Layout: moe.Standard}
	no, yes := false, true
	for _, tc := range []struct {
		name      string
		sentinels *bool
		ids       []int32
		want      string // "" = supported
	}{
		{"absent/sentinel", nil, []int32{0, 2, 1, 1}, ""},
		{"true/sentinel", &yes, []int32{2, 2, 2, 2}, ""},
		{"false/local", &no, []int32{0, 1, 1, 0}, ""},
		{"false/one-sentinel", &no, []int32{0, 1, 2, 0}, "1 sentinel id(s)"},
		{"false/all-sentinel", &no, []int32{2, 2, 2, 2}, "4 sentinel id(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := torchCaps()
			c.Sentinels = tc.sentinels
			err := c.SupportsRouting(cfg, moe.Routing{IDs: tc.ids, Weights: make([]float64, len(tc.ids))})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want supported", err)
				}
				return
			}
			u, ok := gpu.IsUnsupported(err)
			if !ok || !strings.Contains(u.Reason, tc.want) || !strings.Contains(u.Reason, "sentinels=false") {
				t.Fatalf("err = %v, want unsupported with %q", err, tc.want)
			}
		})
	}
	var c Capabilities
	if err := json.Unmarshal([]byte(`{"sentinels": false}`), &c); err != nil || c.TakesSentinels() {
		t.Fatalf("sentinels=false decoded as %v (err %v)", c.Sentinels, err)
	}
	if err := json.Unmarshal([]byte(`{}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.Sentinels = nil; !c.TakesSentinels() {
		t.Fatal("absent sentinels: want taken")
	}
}
