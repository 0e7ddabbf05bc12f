// Package epsplit holds what the float64 reference and the oracle share about an
// expert-parallel split (ep-split-sum: an unsplit layer of E·W experts and its W rank cases
// of E experts each): the condition under which a rank's real rows compute exactly what the
// unsplit layer's rows of its experts compute (Rows), the rows' map (RowMap), and a rank's
// validation that checks only what is not the unsplit layer's (ValidateRank). Module
// internal: not part of the public API.
package epsplit
