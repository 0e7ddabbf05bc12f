package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/worker"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// capsFit returns the props.Env.Fit for a backend's declared capabilities (nil when it
// declares none: everything is supported). only, when not empty, restricts the dtypes further
// (the command's --dtype): a dtype outside it is never substituted in. Kept in one function,
// apart from the commands, so the capability filtering is easy to move.
func capsFit(b gpu.Backend, only ...moe.DType) func(props.Spec) (props.Spec, error) {
	c := worker.CapabilitiesOf(b)
	if c == nil {
		return nil
	}
	s := props.Support{Global: c.EPGlobalRouting, NoSentinels: !c.TakesSentinels(), AlignH: map[moe.DType]int{}, AlignI: map[moe.DType]int{},
		Check: func(cfg moe.Config, global bool) error { return c.SupportsConfig(cfg, global, false) }}
	for _, n := range c.DTypes {
		if d, err := moe.ParseDType(n); err == nil && (len(only) == 0 || slices.Contains(only, d)) {
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
			return sp, &gpu.UnsupportedError{Reason: "the worker supports no dtype (of --dtype), variant or poison policy"}
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

// checkDTypes refuses a --dtype list the backend supports none of (a usage error, rather than
// a run whose every case is unsupported), and a worker that declares no dtype or variant at all
// (its start-up probe dropped every combination: an internal or device error of the worker).
// Both errors carry the tail of the worker's stderr, where the probe says why.
func checkDTypes(b gpu.Backend, dts []moe.DType) error {
	c := worker.CapabilitiesOf(b)
	if c == nil {
		return nil
	}
	if len(c.DTypes) == 0 || len(c.Variants) == 0 {
		return internalErr(fmt.Errorf("the worker declares no dtype or no variant (its start-up probe dropped every combination)%s",
			stderrNote(b)))
	}
	if len(dts) == 0 {
		return nil
	}
	for _, d := range dts {
		if slices.Contains(c.DTypes, d.String()) {
			return nil
		}
	}
	return usageErr("--dtype: the backend supports none of these dtypes (it supports %s)%s", strings.Join(c.DTypes, ", "),
		stderrNote(b))
}

// stderrNote is the tail of a worker's stderr as lines to append to an error ("" when empty).
// The worker writes its stderr before its hello, but the copy of the stderr pipe runs apart
// from the frames and may lag the hello: on this error path it is given up to a second.
func stderrNote(b gpu.Backend) string {
	t := strings.TrimSpace(worker.StderrTail(b))
	for deadline := time.Now().Add(time.Second); t == "" && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		t = strings.TrimSpace(worker.StderrTail(b))
	}
	if t == "" {
		return ""
	}
	lines := strings.Split(t, "\n")
	if len(lines) > 12 {
		lines = lines[len(lines)-12:]
	}
	return fmt.Sprintf("\nworker stderr (last %d lines):\n  | %s", len(lines), strings.Join(lines, "\n  | "))
}
