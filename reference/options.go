package reference

import "github.com/moecheck/moecheck/moe"

// Options configure Run and Magnitude. The zero value is valid: default limits, no stages.
type Options struct {
	// Limits bounds the case's sizes; the zero value means moe.DefaultLimits().
	Limits moe.Limits
	// Stages asks for the stage intermediates (Result.Stages). They hold S·(6H + 6I) + S
	// float64 values, so leave it off for large cases unless triage needs them.
	Stages bool
	// NoWeightGrads leaves the weight gradients DW1 and DW2 out of the result (nil): their
	// GEMMs are a third of the work, and a caller that compares them bitwise reads no
	// reference of them. The other tensors are the same bits; the bias gradients are
	// computed.
	NoWeightGrads bool
}
