package presets

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moecheck/moecheck/moe"
)

// Preset is the shape of one MoE layer of a real model (ANCHORS §5).
type Preset struct {
	Name    string // stable lower-case name used on command lines
	Model   string // the model's own name
	H, I    int    // hidden size, expert intermediate size
	Experts int    // routed experts G (global)
	TopK    int    // experts per token K
	Act     moe.Activation
	Layout  moe.Layout
	Bias    bool
	EP      int    // usual expert-parallel world size (local experts = Experts/EP)
	Source  string // where the numbers come from
}

// list is the catalog; List returns a copy, so no caller can change it.
func list() []Preset {
	return []Preset{
		{Name: "qwen3-30b-a3b", Model: "Qwen3-30B-A3B", H: 2048, I: 768, Experts: 128, TopK: 8, EP: 8,
			Source: "Qwen/Qwen3-30B-A3B config.json (hidden_size, moe_intermediate_size, num_experts, num_experts_per_tok)"},
		{Name: "qwen3-235b-a22b", Model: "Qwen3-235B-A22B", H: 4096, I: 1536, Experts: 128, TopK: 8, EP: 8,
			Source: "Qwen/Qwen3-235B-A22B config.json"},
		{Name: "mixtral-8x7b", Model: "Mixtral-8x7B", H: 4096, I: 14336, Experts: 8, TopK: 2, EP: 8,
			Source: "mistralai/Mixtral-8x7B-v0.1 config.json"},
		{Name: "gpt-oss-20b", Model: "gpt-oss-20b", H: 2880, I: 2880, Experts: 32, TopK: 4, EP: 8,
			Act: moe.GptOss, Layout: moe.Transposed, Bias: true,
			Source: "openai/gpt-oss-20b config.json; transformers GptOssExperts (interleaved, transposed, biases)"},
		{Name: "gpt-oss-120b", Model: "gpt-oss-120b", H: 2880, I: 2880, Experts: 128, TopK: 4, EP: 8,
			Act: moe.GptOss, Layout: moe.Transposed, Bias: true,
			Source: "openai/gpt-oss-120b config.json; transformers GptOssExperts"},
		{Name: "deepseek-v3", Model: "DeepSeek-V3", H: 7168, I: 2048, Experts: 256, TopK: 8, EP: 8,
			Source: "deepseek-ai/DeepSeek-V3 config.json (routed experts only)"},
		{Name: "qwen3-next-80b-a3b", Model: "Qwen3-Next-80B-A3B", H: 2048, I: 512, Experts: 512, TopK: 10, EP: 8,
			Source: "Qwen/Qwen3-Next-80B-A3B-Instruct config.json"},
	}
}

// List returns every preset, in a stable order.
func List() []Preset { return list() }

// Names returns the preset names, in List's order.
func Names() []string {
	var out []string
	for _, p := range list() {
		out = append(out, p.Name)
	}
	return out
}

// ByName finds a preset by name (case-insensitive).
func ByName(name string) (Preset, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, p := range list() {
		if p.Name == n {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("presets: unknown preset %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Select parses a comma-separated list of preset names; "all" (or "") selects every preset,
// "none" none. Duplicates are dropped; the order is List's.
func Select(s string) ([]Preset, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "all":
		return List(), nil
	case "none":
		return nil, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		p, err := ByName(n)
		if err != nil {
			return nil, err
		}
		want[p.Name] = true
	}
	var out []Preset
	for _, p := range list() {
		if want[p.Name] {
			out = append(out, p)
		}
	}
	return out, nil
}

// String is a one-line description.
func (p Preset) String() string {
	s := fmt.Sprintf("%s: H=%d I=%d experts=%d top-%d %s %s", p.Name, p.H, p.I, p.Experts, p.TopK, p.Act, p.Layout)
	if p.Bias {
		s += " bias"
	}
	return s + fmt.Sprintf(" (EP %d → %d local)", p.EP, p.Experts/max(p.EP, 1))
}

// validEP reports whether ep divides the experts evenly.
func (p Preset) validEP(ep int) error {
	if ep < 1 || ep > p.Experts || p.Experts%ep != 0 {
		return fmt.Errorf("presets: %s: EP world size %d must divide the %d experts", p.Name, ep, p.Experts)
	}
	return nil
}

// EPSizes lists the EP world sizes that divide the experts, ascending.
func (p Preset) EPSizes() []int {
	var out []int
	for ep := 1; ep <= p.Experts; ep++ {
		if p.Experts%ep == 0 {
			out = append(out, ep)
		}
	}
	sort.Ints(out)
	return out
}
