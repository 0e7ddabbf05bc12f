package corpus

import (
	"github.com/moecheck/moecheck/internal/fault"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Header is the first line of every corpus file of this format version.
const Header = "moecheck-case v1"

// Ext is the file extension of corpus files.
const Ext = ".case"

// Entry is one corpus case: a named, fully materialized case, its provenance and the hints of
// how to run it.
type Entry struct {
	// Name is the file's base name without Ext (set by Parse from its name argument).
	Name string
	// Comments are the provenance lines, the text after each "#" (one following space
	// removed), in file order. Format writes them after the header.
	Comments []string
	// Case is the case, valid and fully materialized: tensors described by Data are
	// generated.
	Case *moe.Case
	// Data, when set, says the tensors are exactly moe.Generate(config, routing, Seed, Mode)
	// and Format writes this description instead of the values; nil means explicit tensors.
	Data *DataSpec
	// Poisons are the poison policies the case is meant to run under (how a failure was
	// found); nil means no preference (a runner uses all).
	Poisons []gpu.Poison
	// Faults are the faults that were switched on when the case was found (mutation tests);
	// empty for a case that fails on a correct path.
	Faults fault.Set
	// Properties names the properties the case is meant for (as the property runner names
	// them; corpus does not check the names beyond their syntax); nil means all.
	Properties []string
}

// DataSpec describes generated tensors: moe.Generate(config, routing, Seed, Mode).
type DataSpec struct {
	Seed uint64
	Mode moe.DataMode
}

// NameOf is the entry name of a file path: its base name without Ext.
func NameOf(path string) string { return strings.TrimSuffix(filepath.Base(path), Ext) }

// Equal reports whether e and f are the same entry: equal names, comments, hints, data
// descriptions and cases (moe.EqualCases: values bit for bit, NaNs by their float32 bits).
func (e *Entry) Equal(f *Entry) bool {
	if e == nil || f == nil {
		return e == f
	}
	if e.Name != f.Name || !slices.Equal(e.Comments, f.Comments) || !slices.Equal(e.Poisons, f.Poisons) ||
		e.Faults != f.Faults || !slices.Equal(e.Properties, f.Properties) {
		return false
	}
	if (e.Data == nil) != (f.Data == nil) || e.Data != nil && *e.Data != *f.Data {
		return false
	}
	return moe.EqualCases(e.Case, f.Case)
}
