// Package triage explains one failing case: where in the path it goes wrong and which known
// bug class it looks like.
//
// Case runs the backend under test on the case with stage capture under two poison policies
// (NaN and per-buffer signature NaNs), once more under zero fill and once more under NaN to
// see poison- and run-dependence, and judges every run with the oracle. The first stage in
// path order (Stages) with a failure is where the path went wrong: the oracle's stage-local
// checks compare each stage with the enclosure computed from the path's own inputs to it, so
// an error is reported where it arises, not where it lands. The location of its worst
// element says token, slot, expert, sorted row, whether the row is in the sentinel tail, and
// which buffer's poison survived.
//
// The fault class is suggested by differential diagnosis: gpu/sim runs the same case with
// each fault of the catalog switched on, each run gets the same treatment, and the faults are
// ranked by how similar their failure signature (the set of (check, tensor) pairs, the first
// stage, whether it is in the sentinel tail) is to the observed one.
//
// Spec does the same for a generated spec after shrinking it (props.ShrinkFailure). The
// Report prints itself with Write; the caller (cmd/moecheck triage) saves the case.
package triage
