package presets

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/moe"
)

func TestCatalog(t *testing.T) {
	// ANCHORS §5
	want := map[string][4]int{
		"qwen3-30b-a3b": {2048, 768, 128, 8}, "qwen3-235b-a22b": {4096, 1536, 128, 8}, "mixtral-8x7b": {4096, 14336, 8, 2},
		"gpt-oss-20b": {2880, 2880, 32, 4}, "gpt-oss-120b": {2880, 2880, 128, 4}, "deepseek-v3": {7168, 2048, 256, 8},
		"qwen3-next-80b-a3b": {2048, 512, 512, 10},
	}
	if len(List()) != len(want) {
		t.Fatalf("%d presets, want %d", len(List()), len(want))
	}
	for _, p := range List() {
		w, ok := want[p.Name]
		if !ok || [4]int{p.H, p.I, p.Experts, p.TopK} != w {
			t.Errorf("%s: %d/%d/%d/%d, want %v", p.Name, p.H, p.I, p.Experts, p.TopK, w)
		}
		gptoss := strings.HasPrefix(p.Name, "gpt-oss")
		if gptoss != (p.Act == moe.GptOss && p.Layout == moe.Transposed && p.Bias) {
			t.Errorf("%s: act %s layout %s bias %v", p.Name, p.Act, p.Layout, p.Bias)
		}
		if p.Experts%p.EP != 0 {
			t.Errorf("%s: EP %d does not divide %d experts", p.Name, p.EP, p.Experts)
		}
	}
	if _, err := ByName("llama"); err == nil || !strings.Contains(err.Error(), "qwen3-30b-a3b") {
		t.Errorf("unknown preset error: %v", err)
	}
	sel, err := Select("mixtral-8x7b,qwen3-30b-a3b,mixtral-8x7b")
	if err != nil || len(sel) != 2 || sel[0].Name != "qwen3-30b-a3b" {
		t.Errorf("Select: %v %v", sel, err)
	}
	// the caller cannot change the catalog
	l := List()
	l[0].H = 1
	if List()[0].H == 1 {
		t.Error("List returns the catalog itself")
	}
}

func TestCase(t *testing.T) {
	for _, p := range List() {
		for _, r := range []Routing{Dispatched, Replicated, Skewed} {
			o := CaseOptions{T: 6, EP: p.Experts / min(p.Experts, 4), Rank: 1, Routing: r, Seed: 3, Scale: 64}
			c, err := p.Case(o)
			if err != nil {
				t.Fatalf("%s %s: %v", p.Name, r, err)
			}
			if err := c.Validate(moe.Limits{}); err != nil {
				t.Fatalf("%s %s: %v", p.Name, r, err)
			}
			if c.H != (p.H+63)/64 || c.K != p.TopK || c.G() != p.Experts || c.Global == nil {
				t.Fatalf("%s: case %s", p.Name, c.Config)
			}
			for tok := 0; tok < c.T; tok++ {
				local, sum := 0, 0.0
				seen := map[int64]bool{}
				for k := 0; k < c.K; k++ {
					s := tok*c.K + k
					if seen[c.Global.IDs[s]] {
						t.Fatalf("%s: token %d routes to expert %d twice", p.Name, tok, c.Global.IDs[s])
					}
					seen[c.Global.IDs[s]] = true
					sum += c.Global.Weights[s]
					if c.Routing.IDs[s] != int32(c.E) {
						local++
					}
				}
				if r != Replicated && local == 0 {
					t.Fatalf("%s %s: token %d was dispatched to rank 1 without a local expert", p.Name, r, tok)
				}
				if math.Abs(sum-1) > float64(c.K)*c.DType.UnitRoundoff()*2 {
					t.Fatalf("%s: token %d weights sum to %v", p.Name, tok, sum)
				}
			}
		}
	}
}

func TestIDRoundTrip(t *testing.T) {
	p, _ := ByName("gpt-oss-20b")
	for _, o := range []CaseOptions{
		{T: 4, EP: 8, Rank: 3, Seed: 1},
		{T: 16, EP: 32, Rank: 0, Seed: 9, DType: moe.FP16, Routing: Skewed, Data: moe.Integer, Scale: 8},
	} {
		id := p.ID(o)
		q, got, err := ParseID(id)
		if err != nil || q.Name != p.Name || got.withDefaults(p) != o.withDefaults(p) {
			t.Errorf("ParseID(%q) = %s %+v, %v; want %+v", id, q.Name, got, err, o)
		}
	}
	for _, bad := range []string{"gpt-oss-20b/ep7", "gpt-oss-20b/rank9", "gpt-oss-20b/banana", "nope/ep8"} {
		if _, _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}

func TestBudgets(t *testing.T) {
	p, _ := ByName("qwen3-30b-a3b")
	if Tokens(p, CPU, 0) != 4 || Tokens(p, CPU, 2*time.Hour) != 8 || Tokens(p, CPU, 8*time.Hour) != 16 || Tokens(p, GPU, 0) != 4096 {
		t.Error("Tokens")
	}
	// every preset fits an 8 GiB CPU budget with its real H and I except Mixtral, whose single
	// expert is 176M values
	for _, q := range List() {
		ep, err := q.FitEP(CaseOptions{T: 4}, 8<<30)
		if q.Name == "mixtral-8x7b" {
			if err == nil {
				t.Errorf("mixtral fits at EP %d", ep)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", q.Name, err)
			continue
		}
		cfg, err := q.Config(CaseOptions{T: 4, EP: ep})
		if err != nil || MemoryEstimate(cfg) > 8<<30 || ep < q.EP {
			t.Errorf("%s: EP %d: %v", q.Name, ep, err)
		}
	}
}
