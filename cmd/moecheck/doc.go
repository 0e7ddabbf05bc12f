// Command moecheck proves grouped-GEMM Mixture-of-Experts paths correct against a float64
// reference with derived bounds, poisoned memory and property-based testing.
//
// Usage:
//
//	moecheck check      random property run (sharded, budgeted), shrinking and a reproduce line
//	moecheck replay     run corpus cases through every property
//	moecheck save       save a failing spec or fuzz crasher into corpus/regressions
//	moecheck mutants    mutation test: is every catalog fault caught?
//	moecheck triage     first failing stage, location and the most similar known fault class
//	moecheck nightly    corpus + model presets + random budget, JSON Lines results, resume, JUnit
//	moecheck report     Markdown/HTML report with heatmaps from a nightly results file
//	moecheck ref        build a case, run the float64 reference, print a summary
//	moecheck presets    list the model presets
//
// Exit codes: 0 pass, 1 failures found, 2 usage, 3 internal or device error (or an
// interrupted run). See docs/cli.md.
package main
