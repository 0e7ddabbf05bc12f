// Package nightly runs moecheck's long unattended check: the corpus (seed cases and found
// regressions), the real model shapes of package presets, and a budget of random property
// cases, against one backend. Every result is appended to a JSON Lines file as soon as it is
// known (written, flushed and fsynced line by line), so a run that is killed loses at most
// the case in flight, and Resume continues where it stopped: items already recorded are
// skipped and the random stream continues at the next case index with what is left of the
// budget.
//
// For each failure Run writes an artifact (artifacts/<id>.json, via temp file + rename) with
// the per-element maps (oracle.ElementMaps) of the stage tensors that package report plots.
// WriteJUnit renders the results as JUnit XML for CI. Record is the line format; its schema
// is documented in docs/cli.md.
package nightly
