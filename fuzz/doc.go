// Package fuzz holds moecheck's Go fuzz targets (in its tests), run with
//
//	go test -run x -fuzz FuzzCorpusParse -fuzztime 60s ./fuzz
//	go test -run x -fuzz FuzzDecodeCase -fuzztime 60s ./fuzz
//
// FuzzCorpusParse feeds arbitrary bytes to corpus.Parse: it must never panic, every error
// must name the file, and whatever parses must survive Format and Parse unchanged.
// FuzzDecodeCase feeds arbitrary bytes to moe.DecodeCase: every input must decode, the same
// way every time, to a valid case within the decode limits that moe.EncodeCase encodes back
// and, for cases up to 2048 values, that the corpus format saves and reads back unchanged (so
// a case a fuzz target finds can be saved as a regression).
//
// Both are seeded with corpus/seeds (the corpus files themselves, and their codec bytes from
// corpus.Entry.Bytes). Without -fuzz, go test runs the seeds and testdata/fuzz as tests.
// The package's other targets (the full path, the routing stage) are documented in their
// files.
package fuzz
