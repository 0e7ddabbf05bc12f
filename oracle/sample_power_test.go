package oracle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/gpu/sim"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/presets"
)

// TestSampledDetectionPower measures the sampled check's detection power on the fault
// catalog at a real layer's shape (issue 14 item 4; README, "Sampled check"): for each
// catalog fault, the sim's result with the fault switched on is judged by the full check and
// by the sampled check at each fraction of MOECHECK_SAMPLE_FRACTIONS (default 0.01,0.05,0.1)
// over MOECHECK_SAMPLE_SEEDS seeds (default 3), with the oracle's time. It runs only when
// MOECHECK_SAMPLE_PRESET names a preset case (e.g. deepseek-v3/ep64/rank3/T512/seed1): a
// real shape takes minutes. It fails when a sampled check fails a result the full check
// passes (a sample judges a subset with the same bounds), or fails the correct result.
func TestSampledDetectionPower(t *testing.T) {
	id := os.Getenv("MOECHECK_SAMPLE_PRESET")
	if id == "" {
		t.Skip("set MOECHECK_SAMPLE_PRESET to a preset case id to measure")
	}
	fracs := []float64{0.01, 0.05, 0.1}
	if s := os.Getenv("MOECHECK_SAMPLE_FRACTIONS"); s != "" {
		fracs = nil
		for _, f := range strings.Split(s, ",") {
			x, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatal(err)
			}
			fracs = append(fracs, x)
		}
	}
	seeds := 3
	if s := os.Getenv("MOECHECK_SAMPLE_SEEDS"); s != "" {
		var err error
		if seeds, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	only := map[string]bool{}
	if s := os.Getenv("MOECHECK_SAMPLE_FAULTS"); s != "" {
		for _, f := range strings.Split(s, ",") {
			only[f] = true
		}
	}
	p, o, err := presets.ParseID(id)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Case(o)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := c.Plan()
	if err != nil {
		t.Fatal(err)
	}
	out := os.Stderr
	fmt.Fprintf(out, "preset %s: %s, rows %d of %d slots\n", id, c.Config, pl.Rows, c.S())
	head := fmt.Sprintf("%-22s %-6s %8s", "fault", "full", "full s")
	for _, f := range fracs {
		head += fmt.Sprintf(" %10s %8s", fmt.Sprintf("f=%g", f), "s")
	}
	fmt.Fprintln(out, head)
	k := new(Checker)
	infos := append([]fault.Info{{Name: "(none)"}}, fault.Catalog()...)
	for _, fi := range infos {
		if len(only) > 0 && !only[fi.Name] {
			continue
		}
		set := fault.Set(0)
		if fi.Name != "(none)" {
			set = fault.Of(fi.Fault)
		}
		b := sim.New(sim.Options{})
		res, err := fault.Run(context.Background(), b, c, gpu.RunOptions{Poison: gpu.PoisonSignature, Stages: true}, set)
		b.Close()
		line := fmt.Sprintf("%-22s", fi.Name)
		var ce *gpu.CaseError
		if errors.As(err, &ce) {
			fmt.Fprintf(out, "%s %-6s (case error: %s; no oracle)\n", line, "caught", ce.Kind)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", fi.Name, err)
		}
		t0 := time.Now()
		full, err := k.Check(c, res, Options{})
		if err != nil {
			t.Fatal(err)
		}
		line += fmt.Sprintf(" %-6s %7.1fs", caught(!full.Pass), time.Since(t0).Seconds())
		for _, f := range fracs {
			n := 0
			var el time.Duration
			for s := 1; s <= seeds; s++ {
				t0 := time.Now()
				v, err := k.Check(c, res, Options{Sample: Sample{Fraction: f, Seed: uint64(s)}})
				el += time.Since(t0)
				if err != nil {
					t.Fatal(err)
				}
				if !v.Pass {
					n++
					if full.Pass {
						t.Errorf("%s: the sampled check (f %g seed %d) failed a result the full check passes: %s", fi.Name, f, s, v.Summary())
					}
				}
			}
			line += fmt.Sprintf(" %10s %7.1fs", fmt.Sprintf("%d/%d", n, seeds), el.Seconds()/float64(seeds))
		}
		fmt.Fprintln(out, line)
		if fi.Name == "(none)" && !full.Pass {
			t.Errorf("the correct result fails the full check: %s", full.Summary())
		}
	}
}

func caught(b bool) string {
	if b {
		return "caught"
	}
	return "missed"
}
