package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/moecheck/moecheck/internal/interrupt"
	"github.com/moecheck/moecheck/internal/phase"
	"github.com/moecheck/moecheck/internal/presets"
	"github.com/moecheck/moecheck/moe"
	"github.com/moecheck/moecheck/props"
)

// parseShard reads --shard: "" (no sharding), "i/n", "env" or "env/n". With env the index
// comes from SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN when set) or
// JOB_COMPLETION_INDEX (Kubernetes indexed Jobs), the count from /n, SLURM_ARRAY_TASK_COUNT
// or MOECHECK_SHARDS.
func parseShard(s string, getenv func(string) string) (shard, shards int, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, 1, nil
	}
	idx, cnt, hasCount := strings.Cut(s, "/")
	if idx == "env" {
		var from string
		switch {
		case getenv("SLURM_ARRAY_TASK_ID") != "":
			from = "SLURM_ARRAY_TASK_ID"
		case getenv("JOB_COMPLETION_INDEX") != "":
			from = "JOB_COMPLETION_INDEX"
		default:
			return 0, 0, usageErr("--shard env: neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set")
		}
		if shard, err = strconv.Atoi(getenv(from)); err != nil {
			return 0, 0, usageErr("--shard env: %s=%q is not an integer", from, getenv(from))
		}
		if from == "SLURM_ARRAY_TASK_ID" && getenv("SLURM_ARRAY_TASK_MIN") != "" {
			m, err := strconv.Atoi(getenv("SLURM_ARRAY_TASK_MIN"))
			if err != nil {
				return 0, 0, usageErr("--shard env: SLURM_ARRAY_TASK_MIN=%q is not an integer", getenv("SLURM_ARRAY_TASK_MIN"))
			}
			shard -= m
		}
		if !hasCount {
			for _, k := range []string{"SLURM_ARRAY_TASK_COUNT", "MOECHECK_SHARDS"} {
				if getenv(k) != "" {
					cnt, hasCount = getenv(k), true
					break
				}
			}
			if !hasCount {
				return 0, 0, usageErr("--shard env: the shard count is unknown: use --shard env/N or set SLURM_ARRAY_TASK_COUNT or MOECHECK_SHARDS")
			}
		}
	} else {
		if !hasCount {
			return 0, 0, usageErr("--shard %q: want i/n, env or env/n", s)
		}
		if shard, err = strconv.Atoi(idx); err != nil {
			return 0, 0, usageErr("--shard %q: index %q is not an integer", s, idx)
		}
	}
	if shards, err = strconv.Atoi(cnt); err != nil || shards < 1 {
		return 0, 0, usageErr("--shard %q: count %q must be a positive integer", s, cnt)
	}
	if shard < 0 || shard >= shards {
		return 0, 0, usageErr("--shard: index %d outside [0, %d)", shard, shards)
	}
	return shard, shards, nil
}

// parseDTypes reads a comma list of dtypes ("" = all).
func parseDTypes(s string) ([]moe.DType, error) {
	if strings.TrimSpace(s) == "" || s == "all" {
		return nil, nil
	}
	var out []moe.DType
	for _, p := range strings.Split(s, ",") {
		d, err := moe.ParseDType(p)
		if err != nil {
			return nil, usageErr("--dtype: %v", err)
		}
		out = append(out, d)
	}
	return out, nil
}

// parseProperties reads a comma list of property names ("" or "all" = every property).
func parseProperties(flag, s string) ([]props.Property, error) {
	if strings.TrimSpace(s) == "" || s == "all" {
		return nil, nil
	}
	var out []props.Property
	for _, n := range strings.Split(s, ",") {
		p, err := props.ByName(strings.TrimSpace(n))
		if err != nil {
			return nil, usageErr("%s: %v", flag, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func propertyNames() string {
	var n []string
	for _, p := range props.All() {
		n = append(n, p.Name)
	}
	return strings.Join(n, ", ")
}

// parseSpec reads --spec.
func parseSpec(s string, lim moe.Limits) (props.Spec, error) {
	spec, err := props.ParseSpec(s)
	if err != nil {
		return props.Spec{}, usageErr("--spec: %v", err)
	}
	if err := spec.Config().Validate(lim); err != nil { // before anything of its size is allocated
		return props.Spec{}, usageErr("--spec: %v", err)
	}
	if _, err := spec.Build(); err != nil {
		return props.Spec{}, usageErr("--spec: %v", err)
	}
	return spec, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// presetCase builds the case of a preset id (as nightly prints it), refusing one beyond the
// case limits before anything of its size is allocated.
func (a *app) presetCase(id string) (*moe.Case, error) {
	wait, err := a.presetCaseAsync(id, a.caseLimits())
	if err != nil {
		return nil, err
	}
	return wait()
}

// presetCaseAsync is presetCase that checks the id and the case limits at once and builds
// the case on another goroutine (a real layer's case takes a second or two, which check
// spends starting the backend meanwhile); wait returns it.
func (a *app) presetCaseAsync(id string, limits moe.Limits) (wait func() (*moe.Case, error), err error) {
	p, o, err := presets.ParseID(id)
	if err != nil {
		return nil, usageErr("--preset: %v", err)
	}
	cfg, err := p.Config(o)
	if err == nil {
		err = cfg.Validate(limits)
	}
	if err != nil {
		return nil, usageErr("--preset: %v", err)
	}
	type built struct {
		c   *moe.Case
		err error
	}
	done := make(chan built, 1)
	go func() {
		ph := phase.New(a.trace(), "trace: ").Start("preset case")
		c, err := interrupt.Do(a.ctx, func() (*moe.Case, error) { return p.Case(o) })
		ph.End()
		done <- built{c, err}
	}()
	return func() (*moe.Case, error) {
		b := <-done
		if a.ctx.Err() != nil {
			return nil, internalErr(fmt.Errorf("interrupted while building the preset case: %w", a.ctx.Err()))
		}
		if b.err != nil {
			return nil, usageErr("--preset: %v", b.err)
		}
		return b.c, nil
	}, nil
}
