package worker

import (
	"context"
	"fmt"

	"github.com/moecheck/moecheck/gpu"
)

// Forget (optional, any version; docs/gpu.md, "Forget"): a worker whose hello declares
// "forget" answers a request {"type":"forget","id":N} — no tensors, no payload — by dropping
// what its lane's backend carries from the cases before (gpu.Forgetter: buffers a stale
// poison policy would read, a stateful fault's kept data, run counts per case) and the case
// the lane holds for same_case requests, and replies {"type":"forgot","id":N}; the lane's
// next run then sees what it would see in a fresh worker. The Go client sends it when the
// property runner begins a trial (gpu.Forget), so that a worker backend's verdicts do not
// depend on which cases its lane ran before (--jobs, the case order). A worker that does not
// declare it (an older worker) is not asked.

// forgetReply is the worker's answer to forget request f: forgot, or an error frame when the
// request carries tensors or the backend could not forget.
func forgetReply(f *Frame, b gpu.Backend) *Frame {
	h := f.Header
	if len(h.Tensors) != 0 || len(f.Payload) != 0 {
		return errorFrame(h.ID, KindBadRequest, fmt.Sprintf("a forget request with %d tensors and %d payload bytes (it has none)", len(h.Tensors), len(f.Payload)))
	}
	if err := gpu.Forget(b); err != nil {
		return errorFrame(h.ID, KindInternal, "forget: "+err.Error())
	}
	return &Frame{Header: Header{Type: TypeForgot, ID: h.ID}}
}

// Forget asks the lane's worker to forget what it carries from the cases before
// (gpu.Forgetter), when its hello declared forget; a worker that did not declare it is not
// asked, and one not running (none started yet, or it ended) has nothing to forget: the next
// Run starts a fresh one. After a forget request the lane's next run sends its case whole
// (the worker dropped the case it held for same_case requests).
//
// A worker that ends or hangs (past Options.ForgetTimeout) instead of answering is killed: the
// next Run starts a fresh worker, which carries nothing, so Forget succeeds (the restart is
// counted). A worker that answers anything but forgot — an error frame, another type,
// another id, a malformed frame or one with a payload — is killed too, and Forget returns an
// error wrapping ErrProtocol: a worker that declared forget and cannot do it is broken.
func (c *client) Forget() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.g
	g.mu.Lock()
	p, can, closed := g.proc, g.forget, c.closed
	g.mu.Unlock()
	if p == nil || !can || closed {
		return nil
	}
	c.held.p, c.held.enc = nil, nil // the worker drops the case it holds
	if g.lanes > 1 {
		// Not while another lane re-runs a case alone (RunFaults); and in flight on the
		// shared process as a case is (group.begin), so that a case of another lane that
		// meets the process's end meanwhile — which this forget may have caused — is re-run
		// alone, not blamed.
		g.gate.RLock()
		defer g.gate.RUnlock()
		defer g.begin()()
	}
	c.nextID++
	id := c.nextID
	l := p.lanes[c.lane]
	ch := make(chan reply, 1)
	go func() {
		_ = WriteFrame(l.in, &Frame{Header: Header{Type: TypeForget, ID: id}}) // a dead worker: the read below sees it
		f, err := readFrame(l.out, 0)                                          // the reply has no payload
		ch <- reply{f: f, err: err}
	}()
	r, timedOut, err := g.await(context.Background(), p, ch, g.opts.ForgetTimeout)
	switch {
	case timedOut:
		return nil // killed: the next Run starts a fresh worker
	case err != nil:
		return fmt.Errorf("forget: %w", err) // malformed: killed
	case r.err != nil:
		p.ended() // it ended (or another lane's failure ended it): a fresh one comes next
		g.drop(p)
		return nil
	}
	h := r.f.Header
	if h.Type == TypeForgot && h.ID == id && len(h.Tensors) == 0 {
		return nil
	}
	p.kill()
	g.drop(p)
	switch {
	case h.ID != id:
		return fmt.Errorf("%w: reply %q to request %d, want the reply to forget request %d", ErrProtocol, h.Type, h.ID, id)
	case h.Type == TypeError:
		return fmt.Errorf("%w: forget answered %s: %s", ErrProtocol, h.Kind, h.Detail)
	case h.Type == TypeForgot:
		return fmt.Errorf("%w: forgot with %d tensors (it has none)", ErrProtocol, len(h.Tensors))
	}
	return fmt.Errorf("%w: forget answered with a %q frame, want %q", ErrProtocol, h.Type, TypeForgot)
}

var _ gpu.Forgetter = (*client)(nil)
