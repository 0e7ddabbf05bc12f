// Package oracle decides whether a path's result is right, and says where it is not.
//
// The oracle does not guess tolerances. For every tensor the path stores it computes an
// enclosure: an interval per element that provably contains the value any path conforming
// to docs/path.md stores there, given the case's inputs. The enclosure follows the path's
// rounding points: fp32 reductions in unspecified order (bounded with γ for tensor-core
// truncation, or proven exact when all partial sums are representable), fp32 elementwise
// operations (rigorous interval propagation with documented ulp errors, and exact tracking
// where IEEE operations are provably exact), and storage rounding into the dtype (monotone,
// so an interval maps to an interval — and often to a single value, which makes the check
// bitwise). The derivation is in docs/oracle.md.
//
// Check compares a gpu.Result with the enclosure (end to end) and, when the backend reports
// its stages, each stage with the enclosure computed from the path's own inputs to that
// stage (stage-local), which is tight enough to catch precision faults at realistic sizes.
// It also asserts the exact contracts (sentinel rows, sentinel routing-weight gradients,
// empty-expert weight gradients) and recognises surviving poison signatures. The Verdict
// lists every broken rule with its worst element's location (token, slot, expert, sorted
// row, sentinel tail or not, buffer) and a per-tensor table with the error/bound ratio and,
// against the float64 reference, the relative Frobenius error and DeepGEMM's calc_diff.
//
// Enclosures are derived under a path contract (package contract; Options.Contract,
// EncloseUnder): the zero contract is docs/path.md as written (exact); torch and any admit
// other legal rounding choices (PyTorch eager ops, dtype atomics, sums in any order), with
// the derivation in docs/oracle.md §9. Sharpness measures how tight an enclosure is against
// the float64 reference (unconstrained elements, radius ÷ |reference|).
//
// Options.Sample makes the stage-local checks judge a seeded, stratified random subset of
// rows, tokens and weight-gradient rows (sample.go), each judged element against the full
// check's enclosure; Verdict.Sample states the coverage and the derived miss bound
// (docs/oracle.md §10). The zero value checks everything.
//
// Checker.Prepare starts the case-only part of a full stage-local check (validation, plan,
// stage h1's enclosure from the gathered X) while the backend runs the case; Options.Prepared
// hands it to the check, which uses it only where it is exactly what it would compute
// (prepare.go; docs/oracle.md §12).
package oracle
