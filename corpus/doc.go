// Package corpus reads and writes moecheck's corpus: named cases in a versioned, line-oriented
// text format (`.case` files, specified in README.md), with provenance comments and hints of
// how to run them (poison policies, faults, properties). The seed cases live in
// corpus/seeds; failures found by property tests and fuzzing are saved to corpus/regressions.
//
// Parse reads one file into an Entry whose Case is fully materialized (data described by a
// seed is generated) and valid; every error names the file and line and the problem, and
// refuses what moe.Limits refuses instead of clamping it. Format writes an Entry back so that
// Parse(Format(e)) equals e; WriteFile does so via a temporary file and a rename. LoadDir
// loads every `.case` file of a directory, sorted by name.
//
// FromBytes and Entry.Bytes bridge to moe's fuzz codec (moe.DecodeCase, moe.EncodeCase): a
// fuzz input becomes an entry to save, and an entry becomes bytes to seed a fuzz target with.
package corpus
