package corpus

import (
	"bufio"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Format writes e in the corpus format so that Parse reads back an equal entry
// (Entry.Equal; the name comes from Parse's name argument). It checks e first and writes
// nothing if e could not be read back: an invalid case, a Data description that does not
// generate the case's tensors, a NaN payload the dtype does not keep, a comment with a line
// break or control character, an unknown poison policy or fault, a malformed property name.
//
// Output order: header, comments, config, hints, routing (one "tok" line per token), then
// "data:" or the tensors, one line per row of the last axis.
func Format(w io.Writer, e *Entry) error {
	if err := check(e); err != nil {
		return err
	}
	c := e.Case
	bw := bufio.NewWriter(w)
	line := func(format string, args ...any) { fmt.Fprintf(bw, format+"\n", args...) }
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	line("%s", Header)
	for _, s := range e.Comments {
		if s == "" {
			line("#")
		} else {
			line("# %s", s)
		}
	}
	line("shape: T=%d H=%d I=%d E=%d K=%d", c.T, c.H, c.I, c.E, c.K)
	line("dtype: %s", c.DType)
	line("act: %s", c.Act)
	line("layout: %s", c.Layout)
	line("bias: %s", yesNo(c.Bias))
	if w := c.EP.WorldSize(); w > 1 {
		line("ep: rank=%d world=%d", c.EP.Rank, w)
	}
	if c.NonFinite {
		line("nonfinite: yes")
	}
	if len(e.Poisons) > 0 {
		ps := make([]string, len(e.Poisons))
		for i, p := range e.Poisons {
			ps[i] = p.String()
		}
		line("poison: %s", strings.Join(ps, ","))
	}
	if !e.Faults.Empty() {
		line("faults: %s", e.Faults)
	}
	if len(e.Properties) > 0 {
		line("properties: %s", strings.Join(e.Properties, ","))
	}

	ids := func(s int) int64 { return int64(c.Routing.IDs[s]) }
	weights := c.Routing.Weights
	if g := c.Global; g != nil {
		line("routing: global")
		if g.Options.KeepSentinelWeights {
			line("keep-sentinel-weights: yes")
		}
		ids = func(s int) int64 { return g.IDs[s] }
		weights = g.Weights
	} else {
		line("routing: local")
	}
	var sb strings.Builder
	for t := 0; t < c.T; t++ {
		sb.Reset()
		fmt.Fprintf(&sb, "tok %d:", t)
		for k := 0; k < c.K; k++ {
			s := t*c.K + k
			fmt.Fprintf(&sb, " %d:%s", ids(s), formatValue(weights[s]))
		}
		line("%s", sb.String())
	}

	if d := e.Data; d != nil {
		line("data: seed=%d mode=%s", d.Seed, d.Mode)
	} else {
		w1Row, w2Row := c.H, c.I
		if c.Layout == moe.Transposed {
			w1Row, w2Row = 2*c.I, c.H
		}
		rows := []struct {
			key string
			v   []float64
			n   int
		}{{"x", c.X, c.H}, {"w1", c.W1, w1Row}, {"b1", c.B1, 2 * c.I}, {"w2", c.W2, w2Row}, {"b2", c.B2, c.H}, {"dy", c.DY, c.H}}
		for _, r := range rows {
			for i := 0; i < len(r.v); i += r.n {
				sb.Reset()
				sb.WriteString(r.key)
				sb.WriteString(":")
				for _, x := range r.v[i:min(i+r.n, len(r.v))] {
					sb.WriteByte(' ')
					sb.WriteString(formatValue(x))
				}
				line("%s", sb.String())
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("corpus: writing %s: %w", e.Name, err)
	}
	return nil
}

// check reports why Parse would not read back what Format writes for e.
func check(e *Entry) error {
	if e == nil || e.Case == nil {
		return fmt.Errorf("corpus: format: entry without a case")
	}
	c := e.Case
	if err := c.Validate(moe.Limits{}); err != nil {
		return fmt.Errorf("corpus: format %s: %w", e.Name, err)
	}
	if g := c.Global; g != nil {
		for s, w := range g.Weights {
			if err := checkWeight(w, c.DType); err != nil {
				return fmt.Errorf("corpus: format %s: global routing weight %s at token %d slot %d: %w", e.Name, formatValue(w), s/c.K, s%c.K, err)
			}
		}
	}
	for i, s := range e.Comments {
		if !utf8.ValidString(s) {
			return fmt.Errorf("corpus: format %s: comment %d is not UTF-8 text", e.Name, i)
		}
		for _, r := range s {
			if isControl(r) {
				return fmt.Errorf("corpus: format %s: comment %d holds control character %U (one line per comment)", e.Name, i, r)
			}
		}
	}
	for _, p := range e.Poisons {
		if q, err := gpu.ParsePoison(p.String()); err != nil || q != p {
			return fmt.Errorf("corpus: format %s: unknown poison policy %d", e.Name, uint8(p))
		}
	}
	if fs, err := fault.ParseSet(e.Faults.String()); err != nil || fs != e.Faults {
		return fmt.Errorf("corpus: format %s: fault set %#x holds faults outside the catalog", e.Name, uint64(e.Faults))
	}
	for _, p := range e.Properties {
		if err := checkPropertyName(p); err != nil {
			return fmt.Errorf("corpus: format %s: %w", e.Name, err)
		}
	}
	if d := e.Data; d != nil {
		if d.Mode > moe.Subnormal {
			return fmt.Errorf("corpus: format %s: invalid data mode %d", e.Name, uint8(d.Mode))
		}
		g, err := moe.Generate(c.Config, c.Routing, d.Seed, d.Mode)
		if err != nil {
			return fmt.Errorf("corpus: format %s: %w", e.Name, err)
		}
		g.Global, g.NonFinite = c.Global, c.NonFinite
		if !moe.EqualCases(g, c) {
			return fmt.Errorf("corpus: format %s: the case's tensors are not those of data: seed=%d mode=%s (set Entry.Data to nil to write them explicitly)",
				e.Name, d.Seed, d.Mode)
		}
		return nil
	}
	names := []string{"x", "w1", "b1", "w2", "b2", "dy"}
	for k, v := range [][]float64{c.X, c.W1, c.B1, c.W2, c.B2, c.DY} {
		for i, x := range v {
			if err := checkValue(x, c.DType, c.NonFinite); err != nil {
				return fmt.Errorf("corpus: format %s: %s[%d] = %s: %w", e.Name, names[k], i, formatValue(x), err)
			}
		}
	}
	return nil
}
