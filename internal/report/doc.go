// Package report turns a nightly results file (package nightly) into a Markdown report and a
// single static HTML page: the run, a summary table by kind and by property, and for each
// failure what broke, where, how to reproduce it, and PNG plots (gonum.org/v1/plot) drawn
// from its artifact:
//
//   - an error/bound heatmap of the worst stage tensor over (sorted row × column): white for
//     exact matches, blues within the derived bound, oranges to red outside it, dark red for
//     values outside a zero-width bound or non-finite, grey where the value is unconstrained;
//     the per-expert row ranges are ruled and labelled and the sentinel tail is framed, so a
//     leak into the tail (or out of it) is visible at a glance;
//   - a NaN map of the tensor with the most non-finite elements, same geometry, with the
//     buffers whose poison survived.
//
// Files are written via temp file + rename (nightly.WriteFile).
package report
