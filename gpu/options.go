package gpu

// RunOptions configure one Run. The zero value is valid: zero-filled memory (what fresh
// device memory reads as), no stage capture, poison seed 0.
type RunOptions struct {
	// Poison is how every buffer the path takes from an uninitialized allocation is filled
	// before the path runs (see Poison).
	Poison Poison
	// PoisonSeed seeds the Huge policy's random fill.
	PoisonSeed uint64
	// Stages asks the backend to return the stage intermediates (Result.Stages) for triage.
	// Backends may ignore it (Result.Stages stays nil).
	Stages bool
}
