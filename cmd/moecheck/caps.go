package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/worker"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// capsFit returns the props.Env.Fit for a backend's declared capabilities (nil when it
// declares none: everything is supported). Kept in one function, apart from the commands,
// so the capability filtering is easy to move.
func capsFit(b gpu.Backend) func(props.Spec) (props.Spec, error) {
	c := worker.CapabilitiesOf(b)
	if c == nil {
		return nil
	}
	s := props.Support{Global: c.EPGlobalRouting, AlignH: map[moe.DType]int{}, AlignI: map[moe.DType]int{},
		Check: func(cfg moe.Config, global bool) error { return c.SupportsConfig(cfg, global, false) }}
	for _, n := range c.DTypes {
		if d, err := moe.ParseDType(n); err == nil {
			s.DTypes = append(s.DTypes, d)
		}
	}
	for _, v := range c.Variants {
		a, err1 := moe.ParseActivation(v.Act)
		l, err2 := moe.ParseLayout(v.Layout)
		if err1 == nil && err2 == nil {
			s.Variants = append(s.Variants, props.Variant{Act: a, Layout: l, Bias: v.Bias})
		}
	}
	for n, al := range c.Align {
		if d, err := moe.ParseDType(n); err == nil {
			s.AlignH[d], s.AlignI[d] = al.H, al.I
		}
	}
	for _, n := range c.Poisons {
		if p, err := gpu.ParsePoison(n); err == nil {
			s.Poisons = append(s.Poisons, p)
		}
	}
	if len(s.DTypes) == 0 || len(s.Variants) == 0 || len(s.Poisons) == 0 {
		// Nothing fits: every case is unsupported (and counted as such).
		return func(sp props.Spec) (props.Spec, error) {
			return sp, &gpu.UnsupportedError{Reason: "the worker declares no supported dtype, variant or poison policy"}
		}
	}
	return props.FitFunc(s)
}

// writeWorkerNotes prints what a worker backend said about its last case: the op-level triage
// text (when it returned one) and the tail of its standard error.
func writeWorkerNotes(w io.Writer, b gpu.Backend, indent string) {
	if t := strings.TrimSpace(worker.LastTriage(b)); t != "" {
		fmt.Fprintf(w, "%sworker triage:\n", indent)
		for _, l := range strings.Split(t, "\n") {
			fmt.Fprintf(w, "%s  %s\n", indent, l)
		}
	}
	if t := strings.TrimSpace(worker.StderrTail(b)); t != "" {
		lines := strings.Split(t, "\n")
		if len(lines) > 12 {
			lines = lines[len(lines)-12:]
		}
		fmt.Fprintf(w, "%sworker stderr (last %d lines):\n", indent, len(lines))
		for _, l := range lines {
			fmt.Fprintf(w, "%s  | %s\n", indent, l)
		}
	}
}
