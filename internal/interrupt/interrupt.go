package interrupt

import "context"

// Do runs f and returns its result, or ctx's error as soon as ctx ends: an
// interrupt does not wait for a long computation in flight (a reference, sim or oracle pass
// on a real-shape case takes seconds to minutes and does not observe ctx inside its loops).
// The abandoned computation runs on in its goroutine and its result is dropped; nothing
// starts after ctx ended, so it never overlaps a later call on shared scratch memory.
func Do[T any](ctx context.Context, f func() (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}
