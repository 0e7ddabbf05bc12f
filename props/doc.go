// Package props holds moecheck's properties, the generators of the cases they run on, the
// runner that executes them with shrinking, the conformance entry point Verify, and the
// mutation test (Mutants) that runs the suite against every fault in the catalog.
//
// A property is one function, Property.Check, that takes a backend environment and a Trial
// (a case, the poison policy to run it under, and its Origin) and returns an Outcome. The same
// function serves the runner (Run), Verify, the native fuzz targets (package fuzz), triage,
// nightly and the CLI, so there is no second copy of any check; and one function, Reproduce,
// turns any trial's Origin into the command line that reruns it.
//
// Cases are generated as a Spec: a flat struct of small integers (sizes, EP world and rank,
// dtype, activation, layout, bias, routing mode, weight mode, data mode, poison policy, seed)
// from which Build derives the case deterministically. Every field has its own shrinker
// (gopter's Map/FlatMap would drop them), so a failure shrinks toward fewer tokens, fewer
// experts, smaller H and I, uniform routing and plain data, and prints as a one-line spec that
// `moecheck check --spec` reproduces.
package props
