package gpu

// Forgetter is implemented by a backend that carries state from one case's runs into the
// next case's: buffers whose previous contents a poison policy reads (PoisonStale), a
// catalog fault's kept data (fault stale-empty-wgrad's weight gradients), a run counter per
// case (fault nondeterministic-sum). Forget drops that state, so that the next Run sees what
// it would see on a fresh instance; memory may be kept. The property runner (package props)
// calls it at the start of every trial, so that verdicts do not depend on which cases the
// instance ran before (--jobs, the case order), while the runs within a trial still share
// their state.
//
// An error means the backend could not forget (for a worker backend: the worker broke the
// protocol); the caller must not go on as if it had. A backend that carries no state
// between cases need not implement it.
type Forgetter interface {
	Forget() error
}

// Forget calls b's Forget when b implements Forgetter; otherwise it does nothing.
func Forget(b Backend) error {
	if f, ok := b.(Forgetter); ok {
		return f.Forget()
	}
	return nil
}
