package props

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Spec describes a generated case. Every field is a small integer so it can shrink; Build
// interprets out-of-range values modulo their range, so any Spec builds a valid case.
type Spec struct {
	T, H, I, E, K int
	World, Rank   int // EP world size (≥ 1) and rank (taken modulo World)
	Global        int // 1: the case carries the global routing and the path maps it
	DType         int // moe.DType
	Act           int // moe.Activation
	Layout        int // moe.Layout
	Bias          int // 0 or 1
	Routing       int // RoutingMode
	Weights       int // WeightMode
	Data          int // moe.DataMode
	Poison        int // gpu.Poison used by single-run properties
	Seed          int // data and routing seed
}

// specKeys is the order of fields in the text form.
var specKeys = []string{"T", "H", "I", "E", "K", "world", "rank", "global", "dtype", "act", "layout", "bias", "routing", "weights", "data", "poison", "seed"}

func (s *Spec) fields() []*int {
	return []*int{&s.T, &s.H, &s.I, &s.E, &s.K, &s.World, &s.Rank, &s.Global, &s.DType, &s.Act, &s.Layout, &s.Bias, &s.Routing, &s.Weights, &s.Data, &s.Poison, &s.Seed}
}

// String is the one-line form ParseSpec reads, with enum fields by name.
func (s Spec) String() string {
	n := s.normalized()
	var b strings.Builder
	names := map[string]string{
		"dtype":   moe.DType(n.DType).String(),
		"act":     moe.Activation(n.Act).String(),
		"layout":  moe.Layout(n.Layout).String(),
		"routing": RoutingMode(n.Routing).String(),
		"weights": WeightMode(n.Weights).String(),
		"data":    moe.DataMode(n.Data).String(),
		"poison":  gpu.Poison(n.Poison).String(),
	}
	for i, f := range n.fields() {
		if i > 0 {
			b.WriteByte(' ')
		}
		k := specKeys[i]
		if v, ok := names[k]; ok {
			fmt.Fprintf(&b, "%s=%s", k, v)
		} else {
			fmt.Fprintf(&b, "%s=%d", k, *f)
		}
	}
	return b.String()
}

// ParseSpec parses the form String writes (keys in any order; missing keys take the
// smallest value). Unknown keys and malformed values are errors.
func ParseSpec(text string) (Spec, error) {
	s := Spec{T: 1, H: 1, I: 1, E: 1, K: 1, World: 1}
	idx := map[string]int{}
	for i, k := range specKeys {
		idx[strings.ToLower(k)] = i
	}
	if strings.TrimSpace(text) == "" {
		return Spec{}, fmt.Errorf("props: empty spec: want key=value items such as \"T=2 H=8 I=8 E=2 K=1\"")
	}
	seen := map[int]bool{}
	for _, tok := range strings.Fields(text) {
		k, v, ok := strings.Cut(tok, "=")
		if !ok {
			return Spec{}, fmt.Errorf("props: spec item %q: want key=value", tok)
		}
		i, ok := idx[strings.ToLower(k)]
		if !ok {
			keys := append([]string(nil), specKeys...)
			sort.Strings(keys)
			return Spec{}, fmt.Errorf("props: spec key %q unknown (known: %s)", k, strings.Join(keys, ", "))
		}
		if seen[i] {
			return Spec{}, fmt.Errorf("props: spec key %s given twice (%q)", specKeys[i], tok)
		}
		seen[i] = true
		n, err := parseSpecValue(specKeys[i], v)
		if err != nil {
			return Spec{}, fmt.Errorf("props: spec %s=%q: %w", k, v, err)
		}
		*s.fields()[i] = n
	}
	// Build would interpret an out-of-range value modulo its range; text from a person is
	// refused instead, naming the field (String always writes the normalized form).
	n := s.normalized()
	nf := n.fields()
	for i, f := range s.fields() {
		if *f != *nf[i] {
			why := "out of range"
			switch specKeys[i] {
			case "rank":
				why = fmt.Sprintf("must be below world=%d", s.World)
			case "global":
				why = "must be 0 or 1, and 0 when world=1"
			case "T", "H", "I", "E", "K", "world":
				why = "must be at least 1"
			}
			return Spec{}, fmt.Errorf("props: spec %s=%d: %s", specKeys[i], *f, why)
		}
	}
	return s, nil
}

func parseSpecValue(key, v string) (int, error) {
	switch key {
	case "dtype":
		d, err := moe.ParseDType(v)
		return int(d), err
	case "act":
		a, err := moe.ParseActivation(v)
		return int(a), err
	case "layout":
		l, err := moe.ParseLayout(v)
		return int(l), err
	case "routing":
		r, err := ParseRoutingMode(v)
		return int(r), err
	case "weights":
		w, err := ParseWeightMode(v)
		return int(w), err
	case "data":
		d, err := moe.ParseDataMode(v)
		return int(d), err
	case "poison":
		p, err := gpu.ParsePoison(v)
		return int(p), err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("not an integer")
	}
	if n < 0 {
		return 0, fmt.Errorf("must not be negative")
	}
	return n, nil
}

// The sizes of the enum tables a spec indexes (read once: the accessors return copies).
var (
	numDTypes    = len(moe.DTypes())
	numDataModes = len(moe.DataModes())
	numPoisons   = len(gpu.Poisons())
)

// normalized maps every field into its valid range (the interpretation Build uses).
func (s Spec) normalized() Spec {
	pos := func(v int) int {
		if v < 1 {
			return 1
		}
		return v
	}
	mod := func(v, n int) int {
		if v < 0 {
			v = -v
		}
		return v % n
	}
	s.T, s.H, s.I, s.E, s.K, s.World = pos(s.T), pos(s.H), pos(s.I), pos(s.E), pos(s.K), pos(s.World)
	s.Rank = mod(s.Rank, s.World)
	s.Global = mod(s.Global, 2)
	if s.World == 1 {
		s.Global = 0
	}
	s.DType = mod(s.DType, numDTypes)
	s.Act = mod(s.Act, 2)
	s.Layout = mod(s.Layout, 2)
	s.Bias = mod(s.Bias, 2)
	s.Routing = mod(s.Routing, int(numRoutingModes))
	s.Weights = mod(s.Weights, int(numWeightModes))
	s.Data = mod(s.Data, numDataModes)
	s.Poison = mod(s.Poison, numPoisons)
	if s.Seed < 0 {
		s.Seed = -s.Seed
	}
	return s
}

// Config is the case config the spec describes.
func (s Spec) Config() moe.Config {
	n := s.normalized()
	return moe.Config{T: n.T, H: n.H, I: n.I, E: n.E, K: n.K, EP: moe.EP{World: n.World, Rank: n.Rank},
		Act: moe.Activation(n.Act), Layout: moe.Layout(n.Layout), DType: moe.DType(n.DType), Bias: n.Bias == 1}
}

// PoisonPolicy is the poison policy single-run properties use for this spec.
func (s Spec) PoisonPolicy() gpu.Poison { return gpu.Poison(s.normalized().Poison) }

// Build derives the case: routing from (Routing, Weights, Seed), data from (Data, Seed).
func (s Spec) Build() (*moe.Case, error) {
	n := s.normalized()
	cfg := n.Config()
	if err := cfg.Validate(moe.Limits{}); err != nil {
		return nil, fmt.Errorf("props: spec %s: %w", n, err)
	}
	r, g, err := buildRouting(cfg, RoutingMode(n.Routing), WeightMode(n.Weights), uint64(n.Seed), n.Global == 1)
	if err != nil {
		return nil, fmt.Errorf("props: spec %s: %w", n, err)
	}
	c, err := moe.Generate(cfg, r, uint64(n.Seed), moe.DataMode(n.Data))
	if err != nil {
		return nil, fmt.Errorf("props: spec %s: %w", n, err)
	}
	c.Global = g
	return c, nil
}
