package gpu

import "errors"

// UnsupportedError says that a backend does not support a case (a dtype, an activation and
// layout combination, an alignment, a poison policy, ...): the case is outside the backend's
// declared capabilities. It is neither a failure nor a case error: callers count the case as
// unsupported and go on.
type UnsupportedError struct {
	Reason string // one line: what is outside the capabilities
}

func (e *UnsupportedError) Error() string { return "unsupported case: " + e.Reason }

// IsUnsupported reports whether err is (or wraps) an *UnsupportedError and returns it.
func IsUnsupported(err error) (*UnsupportedError, bool) {
	var u *UnsupportedError
	ok := errors.As(err, &u)
	return u, ok
}
