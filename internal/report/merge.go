package report

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/moecheck/moecheck/internal/nightly"
)

// ReadFiles reads the results files of the shards of one nightly run (`--shard i/n` on
// several machines: a Slurm array, a Kubernetes indexed Job) and builds one report over all
// of them; with one path it is ReadFile.
//
// The files must come from one run: the same backend, faults, stage mode, seed, case count
// and budget, shard count, corpus, presets, properties and run-defining flags, each file a
// different shard. A difference is an error naming the files and the setting. A shard of
// the count that is missing is a warning (the report covers what is there). The fixed items
// (corpus and preset cases) run on every shard: the report keeps one record per item, a
// failing one if any shard failed it (with a warning when the shards disagree). Random
// cases are disjoint across shards and are listed by case index. Artifacts are read
// relative to their own results file.
func ReadFiles(paths []string, o Options) (*Report, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("report: no results file")
	}
	if len(paths) == 1 {
		return ReadFile(paths[0], o)
	}
	type shardFile struct {
		path string
		recs []nightly.Record
		run  *nightly.RunInfo
	}
	var files []shardFile
	var warnings []string
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		recs, good, complete, err := nightly.ReadResults(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("report: %s: %w", path, err)
		}
		if !complete {
			warnings = append(warnings, fmt.Sprintf("the last line of %s (from byte %d) is cut short, a run killed while writing it: left out", path, good))
		}
		sf := shardFile{path: path, recs: recs}
		for _, r := range recs {
			if r.Type == nightly.TypeStart && r.Run != nil {
				sf.run = r.Run
				break
			}
		}
		if sf.run == nil {
			return nil, &MergeError{fmt.Errorf("report: %s has no start record: not the results file of a nightly run", path)}
		}
		files = append(files, sf)
	}
	first := files[0]
	seen := map[int]string{}
	for _, f := range files {
		if d := runDiff(first.run, f.run); len(d) > 0 {
			return nil, &MergeError{fmt.Errorf("report: %s and %s are not shards of one run: %s", first.path, f.path, strings.Join(d, ", "))}
		}
		if p, ok := seen[f.run.Shard]; ok {
			return nil, &MergeError{fmt.Errorf("report: %s and %s are both shard %d/%d", p, f.path, f.run.Shard, max(f.run.Shards, 1))}
		}
		seen[f.run.Shard] = f.path
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].run.Shard < files[j].run.Shard })
	shards := max(first.run.Shards, 1)
	var have []int
	for _, f := range files {
		have = append(have, f.run.Shard)
	}
	if len(have) < shards {
		var missing []string
		for s := 0; s < shards; s++ {
			if !slices.Contains(have, s) {
				missing = append(missing, fmt.Sprint(s))
			}
		}
		warnings = append(warnings, fmt.Sprintf("shard(s) %s of %d missing: the report covers %d of %d shards", strings.Join(missing, ", "), shards, len(have), shards))
	}

	// merge: every start record, one record per fixed item, the random cases by index
	var merged []nightly.Record
	dirs := map[string]string{}
	fixedAt := map[string]int{}
	fixedFrom := map[string]int{} // the shard of the kept record
	var fixed, random []nightly.Record
	for _, f := range files {
		for _, r := range f.recs {
			if r.Type == nightly.TypeStart {
				merged = append(merged, r)
			}
		}
		for _, r := range nightly.Cases(f.recs) {
			if r.Kind == nightly.KindRandom {
				random = append(random, r)
				dirs[r.ID] = filepath.Dir(f.path)
				continue
			}
			i, ok := fixedAt[r.ID]
			if !ok {
				fixedAt[r.ID], fixedFrom[r.ID] = len(fixed), f.run.Shard
				fixed = append(fixed, r)
				dirs[r.ID] = filepath.Dir(f.path)
				continue
			}
			if kept := fixed[i]; kept.Status != r.Status {
				warnings = append(warnings, fmt.Sprintf("%s: %s on shard %d, %s on shard %d", r.ID, kept.Status, fixedFrom[r.ID], r.Status, f.run.Shard))
				if r.Status == nightly.StatusFail && kept.Status != nightly.StatusFail {
					fixed[i], fixedFrom[r.ID] = r, f.run.Shard
					dirs[r.ID] = filepath.Dir(f.path)
				}
			}
		}
	}
	sort.SliceStable(random, func(i, j int) bool { return index(random[i]) < index(random[j]) })
	merged = append(merged, fixed...)
	merged = append(merged, random...)
	o.dirs = dirs
	r, err := Build(merged, o)
	if err != nil {
		return nil, err
	}
	run := *first.run
	r.Run = &run
	starts := 0
	for _, m := range merged {
		if m.Type == nightly.TypeStart {
			starts++
		}
	}
	r.Resumes = starts - len(files)
	r.Shards = have
	r.Warnings = append(warnings, r.Warnings...)
	return r, nil
}

func index(r nightly.Record) int {
	if r.Index == nil {
		return -1
	}
	return *r.Index
}

// MergeError is ReadFiles' error for files that cannot be merged (not shards of one run):
// a usage error, unlike a file that cannot be read.
type MergeError struct{ Err error }

func (e *MergeError) Error() string { return e.Err.Error() }
func (e *MergeError) Unwrap() error { return e.Err }

// runDiff names the run-defining settings in which b differs from a (the shard index aside).
func runDiff(a, b *nightly.RunInfo) []string {
	var d []string
	diff := func(name string, x, y any) {
		if fmt.Sprint(x) != fmt.Sprint(y) {
			d = append(d, fmt.Sprintf("%s %v vs %v", name, x, y))
		}
	}
	diff("backend", a.Backend, b.Backend)
	diff("faults", q(a.Faults), q(b.Faults))
	diff("no-stages", a.NoStages, b.NoStages)
	diff("contract", q(a.Contract), q(b.Contract))
	diff("seed", a.Seed, b.Seed)
	diff("cases", a.Cases, b.Cases)
	diff("budget (s)", a.BudgetS, b.BudgetS)
	diff("shard count", max(a.Shards, 1), max(b.Shards, 1))
	diff("corpus cases", a.Corpus, b.Corpus)
	diff("presets", a.Presets, b.Presets)
	diff("properties", a.Properties, b.Properties)
	diff("sample", sampleOf(a), sampleOf(b))
	keys := map[string]bool{}
	for k := range a.Flags {
		keys[k] = true
	}
	for k := range b.Flags {
		keys[k] = true
	}
	var names []string
	for k := range keys {
		if k != "shard" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		x, okx := a.Flags[k]
		y, oky := b.Flags[k]
		if x != y || okx != oky {
			d = append(d, fmt.Sprintf("--%s %s vs %s", k, q(x), q(y)))
		}
	}
	return d
}

func q(s string) string { return fmt.Sprintf("%q", s) }

// sampleOf names a run's sampled check ("none": full checks).
func sampleOf(r *nightly.RunInfo) string {
	if r.Sample == nil {
		return "none"
	}
	return fmt.Sprintf("fraction %g seed %d", r.Sample.Fraction, r.Sample.Seed)
}
