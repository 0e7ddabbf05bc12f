package corpus

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// MaxLine is the longest line Parse reads (a tensor row of the largest H, written with the
// longest values, is about 800 KiB).
const MaxLine = 16 << 20

// ParseOptions tune ParseWith. The zero value is valid: moe's default limits.
type ParseOptions struct {
	// Limits bounds the case's sizes (the zero Limits means moe.DefaultLimits()). Checked
	// before anything of the case's size is allocated or generated.
	Limits moe.Limits
}

// Parse reads one corpus file (the format of README.md) with the default options; name is the
// file name used in errors and for Entry.Name.
func Parse(r io.Reader, name string) (*Entry, error) { return ParseWith(r, name, ParseOptions{}) }

// ParseWith reads one corpus file. Errors name the file and line ("name:12: ...") and the
// problem; a size over opts.Limits is refused naming the limit. It never panics and never
// clamps or rounds a value: the entry's case is exactly what the file says, or an error.
func ParseWith(r io.Reader, name string, opts ParseOptions) (*Entry, error) {
	p := &parser{name: name, lim: opts.Limits, scalars: map[string]field{}, toks: map[int]field{}, tensors: map[string][]field{}}
	if err := p.read(r); err != nil {
		return nil, err
	}
	return p.build()
}

// field is one "key: value" line.
type field struct {
	line  int
	value string
}

type parser struct {
	name     string
	lim      moe.Limits
	last     int // last line number read
	comments []string
	scalars  map[string]field
	toks     map[int]field
	tensors  map[string][]field // lines of each tensor, in order
	order    []string           // tensor keys in order of first appearance
}

func (p *parser) errf(line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", p.name, line, fmt.Sprintf(format, args...))
}

// Keys of single-valued lines.
var scalarKeys = []string{"shape", "dtype", "act", "layout", "bias", "ep", "nonfinite", "routing",
	"keep-sentinel-weights", "data", "poison", "faults", "properties"}

// Tensor keys in Format's order, with the moe name used in messages.
var tensorKeys = []struct{ key, what string }{
	{"x", "X (hidden)"}, {"w1", "W1 (gate_up_proj)"}, {"b1", "B1 (gate_up bias)"},
	{"w2", "W2 (down_proj)"}, {"b2", "B2 (down bias)"}, {"dy", "dY"}}

func isTensorKey(k string) bool {
	for _, t := range tensorKeys {
		if t.key == k {
			return true
		}
	}
	return false
}

func (p *parser) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	n := 0
	for sc.Scan() {
		n++
		p.last = n
		line := strings.TrimSuffix(sc.Text(), "\r")
		if !utf8.ValidString(line) {
			return p.errf(n, "not UTF-8 text")
		}
		for _, c := range line {
			if isControl(c) {
				return p.errf(n, "control character %U in line", c)
			}
		}
		if n == 1 {
			if err := p.header(line); err != nil {
				return err
			}
			continue
		}
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		if t[0] == '#' {
			c := strings.TrimLeftFunc(line, unicode.IsSpace)[1:]
			p.comments = append(p.comments, strings.TrimPrefix(c, " "))
			continue
		}
		key, value, ok := strings.Cut(t, ":")
		if !ok {
			return p.errf(n, "want \"key: value\" or a \"# comment\", got %q", clip(t))
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		f := field{n, value}
		switch {
		case strings.HasPrefix(key, "tok ") || key == "tok":
			ts := strings.TrimSpace(strings.TrimPrefix(key, "tok"))
			tk, err := strconv.Atoi(ts)
			if err != nil || tk < 0 || ts != strconv.Itoa(tk) {
				return p.errf(n, "token number %q: want a decimal integer ≥ 0 (\"tok 3: ...\")", clip(ts))
			}
			if prev, dup := p.toks[tk]; dup {
				return p.errf(n, "tok %d given twice (first on line %d)", tk, prev.line)
			}
			p.toks[tk] = f
		case isTensorKey(key):
			if _, seen := p.tensors[key]; !seen {
				p.order = append(p.order, key)
			}
			p.tensors[key] = append(p.tensors[key], f)
		default:
			known := false
			for _, k := range scalarKeys {
				known = known || k == key
			}
			if !known {
				return p.errf(n, "unknown key %q (known: %s, tok <n>, x, w1, b1, w2, b2, dy)", clip(key), strings.Join(scalarKeys, ", "))
			}
			if prev, dup := p.scalars[key]; dup {
				return p.errf(n, "%s given twice (first on line %d)", key, prev.line)
			}
			p.scalars[key] = f
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return p.errf(n+1, "line longer than %d MiB", MaxLine>>20)
		}
		return fmt.Errorf("%s:%d: %w", p.name, n+1, err)
	}
	if n == 0 {
		return p.errf(1, "empty file (want the header line %q)", Header)
	}
	return nil
}

func (p *parser) header(line string) error {
	h := strings.TrimSpace(line)
	if h == Header {
		return nil
	}
	if v, ok := strings.CutPrefix(h, "moecheck-case "); ok {
		return p.errf(1, "unsupported format version %q (this moecheck reads v1)", clip(v))
	}
	return p.errf(1, "missing header line %q (got %q)", Header, clip(h))
}

// isControl reports the characters a corpus file may not hold: C0 and C1 controls and DEL,
// but the tab.
func isControl(r rune) bool { return unicode.IsControl(r) && r != '\t' }

// clip shortens text quoted in errors.
func clip(s string) string {
	if len(s) > 60 {
		i := 60
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		return s[:i] + "…"
	}
	return s
}

// kv parses "k=v k=v" with the allowed keys, each at most once.
func (p *parser) kv(f field, what string, allowed ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Fields(f.value) {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, p.errf(f.line, "%s: %q is not key=value", what, clip(part))
		}
		found := false
		for _, a := range allowed {
			found = found || a == k
		}
		if !found {
			return nil, p.errf(f.line, "%s: unknown field %q (want %s)", what, clip(k), strings.Join(allowed, ", "))
		}
		if _, dup := out[k]; dup {
			return nil, p.errf(f.line, "%s: %s given twice", what, k)
		}
		out[k] = v
	}
	return out, nil
}

func (p *parser) boolean(key string) (bool, error) {
	f, ok := p.scalars[key]
	if !ok {
		return false, nil
	}
	switch strings.ToLower(f.value) {
	case "yes", "true":
		return true, nil
	case "no", "false":
		return false, nil
	}
	return false, p.errf(f.line, "%s: %q is not yes or no", key, clip(f.value))
}

func (p *parser) required(key string) (field, error) {
	f, ok := p.scalars[key]
	if !ok {
		return f, p.errf(p.last, "missing %q line", key+":")
	}
	return f, nil
}

// build turns the lines into an entry, checking everything before allocating anything of the
// case's size.
func (p *parser) build() (*Entry, error) {
	e := &Entry{Name: NameOf(p.name), Comments: p.comments}
	cfg, err := p.config()
	if err != nil {
		return nil, err
	}
	d := cfg.DType
	nonFinite, err := p.boolean("nonfinite")
	if err != nil {
		return nil, err
	}

	// Routing.
	rf, err := p.required("routing")
	if err != nil {
		return nil, err
	}
	var global bool
	switch rf.value {
	case "local":
	case "global":
		global = true
	default:
		return nil, p.errf(rf.line, "routing: %q is not local or global", clip(rf.value))
	}
	keep, err := p.boolean("keep-sentinel-weights")
	if err != nil {
		return nil, err
	}
	if kf, ok := p.scalars["keep-sentinel-weights"]; ok && !global {
		return nil, p.errf(kf.line, "keep-sentinel-weights applies to global routing only (routing: local on line %d)", rf.line)
	}
	for _, t := range p.tokOrder() {
		if t >= cfg.T {
			return nil, p.errf(p.toks[t].line, "tok %d outside [0, %d) (T = %d)", t, cfg.T, cfg.T)
		}
	}
	for t := 0; t < cfg.T; t++ {
		if _, ok := p.toks[t]; !ok {
			return nil, p.errf(rf.line, "routing: no line for token %d (want \"tok 0:\" to \"tok %d:\", one per token)", t, cfg.T-1)
		}
	}
	S := cfg.S()
	ids := make([]int64, S)
	weights := make([]float64, S)
	idMax := int64(cfg.E) // local: [0, E], E the sentinel
	if global {
		idMax = int64(cfg.G()) - 1
	}
	for t := 0; t < cfg.T; t++ {
		f := p.toks[t]
		pairs := strings.Fields(f.value)
		if len(pairs) != cfg.K {
			return nil, p.errf(f.line, "tok %d: %d id:weight pairs, want K = %d", t, len(pairs), cfg.K)
		}
		for k, pr := range pairs {
			is, ws, ok := strings.Cut(pr, ":")
			if !ok {
				return nil, p.errf(f.line, "tok %d slot %d: %q is not id:weight", t, k, clip(pr))
			}
			id, err := strconv.ParseInt(is, 10, 64)
			if err != nil {
				return nil, p.errf(f.line, "tok %d slot %d: expert id %q: want a decimal integer", t, k, clip(is))
			}
			if id < 0 || id > idMax {
				if global {
					return nil, p.errf(f.line, "tok %d slot %d: global expert id %d outside [0, %d) (G = E·W = %d·%d)", t, k, id, idMax+1, cfg.E, cfg.EP.WorldSize())
				}
				return nil, p.errf(f.line, "tok %d slot %d: expert id %d outside [0, %d] (local experts 0..%d, sentinel %d)", t, k, id, cfg.E, cfg.E-1, cfg.E)
			}
			w, err := parseValue(ws)
			if err == nil {
				err = checkWeight(w, d)
			}
			if err != nil {
				return nil, p.errf(f.line, "tok %d slot %d: routing weight %q: %v", t, k, clip(ws), err)
			}
			ids[t*cfg.K+k], weights[t*cfg.K+k] = id, w
		}
	}
	var r moe.Routing
	var g *moe.GlobalRouting
	if global {
		g = &moe.GlobalRouting{IDs: ids, Weights: weights, Options: moe.GlobalOptions{KeepSentinelWeights: keep}}
		if r, err = moe.FromGlobal(cfg, ids, weights, g.Options); err != nil {
			return nil, p.errf(rf.line, "routing: %v", err)
		}
	} else {
		r = moe.Routing{IDs: make([]int32, S), Weights: weights}
		for s, id := range ids {
			r.IDs[s] = int32(id)
		}
	}

	// Data.
	var c *moe.Case
	df, described := p.scalars["data"]
	switch {
	case described && len(p.order) > 0:
		f := p.tensors[p.order[0]][0]
		return nil, p.errf(f.line, "%s: tensor values and \"data:\" (line %d) both given; use one", p.order[0], df.line)
	case described:
		m, err := p.kv(df, "data", "seed", "mode")
		if err != nil {
			return nil, err
		}
		ss, ok1 := m["seed"]
		ms, ok2 := m["mode"]
		if !ok1 || !ok2 {
			return nil, p.errf(df.line, "data: want seed=<n> mode=<normal|integer|large|subnormal>")
		}
		seed, err := strconv.ParseUint(ss, 10, 64)
		if err != nil {
			return nil, p.errf(df.line, "data: seed %q: want a decimal integer in [0, 2^64)", clip(ss))
		}
		mode, err := moe.ParseDataMode(ms)
		if err != nil {
			return nil, p.errf(df.line, "data: mode %q: want normal, integer, large or subnormal", clip(ms))
		}
		if c, err = moe.Generate(cfg, r, seed, mode); err != nil {
			return nil, p.errf(df.line, "data: %v", err)
		}
		e.Data = &DataSpec{Seed: seed, Mode: mode}
	default:
		c = &moe.Case{Config: cfg, Routing: r}
		if err := p.tensorValues(c, nonFinite); err != nil {
			return nil, err
		}
	}
	c.Global = g
	c.NonFinite = nonFinite

	// Hints.
	if f, ok := p.scalars["poison"]; ok {
		for _, s := range strings.Split(f.value, ",") {
			pp, err := gpu.ParsePoison(s)
			if err != nil {
				return nil, p.errf(f.line, "poison: %v", err)
			}
			e.Poisons = append(e.Poisons, pp)
		}
	}
	if f, ok := p.scalars["faults"]; ok {
		if e.Faults, err = fault.ParseSet(f.value); err != nil {
			return nil, p.errf(f.line, "faults: %v", err)
		}
	}
	if f, ok := p.scalars["properties"]; ok {
		for _, s := range strings.Split(f.value, ",") {
			s = strings.TrimSpace(s)
			if err := checkPropertyName(s); err != nil {
				return nil, p.errf(f.line, "properties: %v", err)
			}
			e.Properties = append(e.Properties, s)
		}
	}
	if err := c.Validate(p.lim); err != nil { // every check above should have caught it
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	e.Case = c
	return e, nil
}

// checkPropertyName accepts a non-empty name of letters, digits and - _ . /.
func checkPropertyName(s string) error {
	if s == "" {
		return fmt.Errorf("empty property name")
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./", c)) {
			return fmt.Errorf("property name %q: only letters, digits and - _ . / are allowed", clip(s))
		}
	}
	return nil
}

// tokOrder returns the token numbers of the tok lines in file order.
func (p *parser) tokOrder() []int {
	ts := make([]int, 0, len(p.toks))
	for t := range p.toks {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return p.toks[ts[i]].line < p.toks[ts[j]].line })
	return ts
}

// config parses shape, dtype, act, layout, bias and ep and checks them against the limits.
func (p *parser) config() (moe.Config, error) {
	var cfg moe.Config
	sf, err := p.required("shape")
	if err != nil {
		return cfg, err
	}
	m, err := p.kv(sf, "shape", "T", "H", "I", "E", "K")
	if err != nil {
		return cfg, err
	}
	for _, x := range []struct {
		k string
		v *int
	}{{"T", &cfg.T}, {"H", &cfg.H}, {"I", &cfg.I}, {"E", &cfg.E}, {"K", &cfg.K}} {
		s, ok := m[x.k]
		if !ok {
			return cfg, p.errf(sf.line, "shape: missing %s= (want T=<tokens> H=<hidden> I=<intermediate> E=<experts> K=<top-k>)", x.k)
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return cfg, p.errf(sf.line, "shape: %s=%q: want a decimal integer", x.k, clip(s))
		}
		*x.v = n
	}
	df, err := p.required("dtype")
	if err != nil {
		return cfg, err
	}
	if cfg.DType, err = moe.ParseDType(df.value); err != nil {
		return cfg, p.errf(df.line, "dtype: %v", err)
	}
	if f, ok := p.scalars["act"]; ok {
		if cfg.Act, err = moe.ParseActivation(f.value); err != nil {
			return cfg, p.errf(f.line, "act: %v", err)
		}
	}
	if f, ok := p.scalars["layout"]; ok {
		if cfg.Layout, err = moe.ParseLayout(f.value); err != nil {
			return cfg, p.errf(f.line, "layout: %v", err)
		}
	}
	if cfg.Bias, err = p.boolean("bias"); err != nil {
		return cfg, err
	}
	if f, ok := p.scalars["ep"]; ok {
		m, err := p.kv(f, "ep", "rank", "world")
		if err != nil {
			return cfg, err
		}
		rank, world := 0, 1
		for _, x := range []struct {
			k string
			v *int
		}{{"rank", &rank}, {"world", &world}} {
			if s, ok := m[x.k]; ok {
				if *x.v, err = strconv.Atoi(s); err != nil {
					return cfg, p.errf(f.line, "ep: %s=%q: want a decimal integer", x.k, clip(s))
				}
			}
		}
		maxWorld := p.lim.MaxWorld
		if maxWorld == 0 {
			maxWorld = moe.DefaultLimits().MaxWorld
		}
		if world < 1 || world > maxWorld {
			return cfg, p.errf(f.line, "ep: world=%d outside [1, %d] (the limit MaxWorld)", world, maxWorld)
		}
		if rank < 0 || rank >= world {
			return cfg, p.errf(f.line, "ep: rank=%d outside [0, %d) for world=%d", rank, world, world)
		}
		if world > 1 {
			cfg.EP = moe.EP{World: world, Rank: rank}
		}
	}
	if err := cfg.Validate(p.lim); err != nil {
		return cfg, p.errf(sf.line, "shape: %v", err)
	}
	return cfg, nil
}

// tensorValues parses the explicit tensors of c.
func (p *parser) tensorValues(c *moe.Case, nonFinite bool) error {
	if len(p.order) == 0 {
		return p.errf(p.last, "no data: want a \"data: seed=<n> mode=<m>\" line or the tensors x, w1, w2, dy (and b1, b2 with bias)")
	}
	want := map[string]int{"x": c.LenX(), "w1": c.LenW1(), "w2": c.LenW2(), "dy": c.LenX()}
	if c.Bias {
		want["b1"], want["b2"] = c.LenB1(), c.LenB2()
	}
	dst := map[string]*[]float64{"x": &c.X, "w1": &c.W1, "b1": &c.B1, "w2": &c.W2, "b2": &c.B2, "dy": &c.DY}
	for _, tk := range tensorKeys {
		lines, given := p.tensors[tk.key]
		n, needed := want[tk.key]
		switch {
		case given && !needed:
			return p.errf(lines[0].line, "%s given but the case has no biases (bias: no)", tk.key)
		case !given && needed:
			return p.errf(p.last, "missing tensor %s (%s, %d values)", tk.key, tk.what, n)
		case !given:
			continue
		}
		v := make([]float64, 0, min(n, 1<<16)) // grows with the file, not with the claimed size
		for _, f := range lines {
			for _, s := range strings.Fields(f.value) {
				if len(v) == n {
					return p.errf(f.line, "%s has more than %d values (%s for %s)", tk.key, n, tk.what, c.Config)
				}
				x, err := parseValue(s)
				if err == nil {
					err = checkValue(x, c.DType, nonFinite)
				}
				if err != nil {
					return p.errf(f.line, "%s[%d] %q: %v", tk.key, len(v), clip(s), err)
				}
				v = append(v, x)
			}
		}
		if len(v) != n {
			return p.errf(lines[len(lines)-1].line, "%s has %d values, want %d (%s for %s)", tk.key, len(v), n, tk.what, c.Config)
		}
		*dst[tk.key] = v
	}
	return nil
}
