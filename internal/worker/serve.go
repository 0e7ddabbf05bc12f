package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/fault"
	"github.com/moecheck/moecheck/internal/phase"
	"github.com/moecheck/moecheck/internal/rawcase"
	"github.com/moecheck/moecheck/moe"
)

// ServeOptions tune Serve. The zero value is valid.
type ServeOptions struct {
	// Device describes what the backend runs on (the hello frame's device field).
	Device string
	// Version is the protocol version to announce (0: Version; 1 for version-1 clients).
	Version int
	// Capabilities to declare in a version-2 hello (nil: everything).
	Capabilities *Capabilities
	// Lanes is the number of lanes the process serves, declared in the hello when above 1
	// (ServeLanes sets it).
	Lanes int
	// Trace, when non-nil, receives a timeline of each request (package internal/phase):
	// decoding it, running it, writing the result. Nil writes nothing.
	Trace io.Writer

	gate *frameGate // ServeLanes: stops every lane's output after a crash
}

// frameGate lets frames out until it is shut: a frame being written when it shuts is
// finished first, none starts after. ServeLanes shuts it when a lane crashes, so that the
// other lanes answer nothing more (their cases ran, or run, on a lost device, or on backends
// being closed): the process then exits, and the client re-runs those cases alone.
type frameGate struct {
	mu   sync.RWMutex
	shut bool
}

// errGateShut is Serve's error on a lane whose output was stopped by another lane's crash.
var errGateShut = errors.New("worker: another lane crashed; output stopped")

func (g *frameGate) write(w io.Writer, f *Frame) error {
	return g.do(func() error { return WriteFrame(w, f) })
}

// do runs write, which writes one frame, unless the gate is shut.
func (g *frameGate) do(write func() error) error {
	if g == nil {
		return write()
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.shut {
		return errGateShut
	}
	return write()
}

// close shuts the gate once every frame in progress is written (nil: no gate, one lane).
func (g *frameGate) close() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shut = true
}

// ErrCrashed is returned by Serve after it answered a case with a crash: the backend's
// device state is lost (a CUDA context after a kernel fault is unusable), so the worker
// process must exit and be restarted. cmd/moecheck-worker exits with status 3.
var ErrCrashed = errors.New("worker: backend crashed; exit and restart")

// ErrHangup is returned by Serve when its input ends while a case runs (the client died):
// the case's context was cancelled, and the backend may still be busy with it, so the worker
// process should exit at once rather than close the backend. cmd/moecheck-worker exits 0.
var ErrHangup = errors.New("worker: client hung up mid-case")

// HangupGrace is how long Serve waits, after a hang-up mid-case, for the backend to observe
// its cancelled context before returning ErrHangup anyway.
const HangupGrace = 2 * time.Second

// Serve answers run requests from r with backend b, writing frames to w, until r ends or a
// bye arrives (nil), a write fails, or the backend crashes (ErrCrashed). It speaks first: a
// hello frame with the protocol version. Requests are read ahead, so when r ends (or a frame
// arrives) while a case runs — the client was killed — the case's context is cancelled and
// Serve returns as soon as the backend gives up, rather than running the case to its end.
func Serve(r io.Reader, w io.Writer, b gpu.Backend, o ServeOptions) error {
	v := o.Version
	if v == 0 {
		v = Version
	}
	if v < MinVersion || v > Version {
		return fmt.Errorf("worker: cannot serve protocol version %d (want %d to %d)", v, MinVersion, Version)
	}
	hello := Header{Type: TypeHello, Proto: Proto, Version: v, Backend: b.Name(), Device: o.Device}
	if o.Lanes > 1 {
		hello.Lanes = o.Lanes
	}
	if v >= 2 {
		hello.Capabilities = o.Capabilities
	}
	hello.SameCase, hello.ZeroTails = true, true
	_, hello.Forget = b.(gpu.Forgetter) // a backend without state between cases has nothing to forget
	if err := o.gate.write(w, &Frame{Header: hello}); err != nil {
		return err
	}
	type msg struct {
		f   *Frame
		err error
	}
	frames := make(chan msg, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			f, err := ReadFrame(r)
			select {
			case frames <- msg{f, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var pending *msg
	var scratch []byte // writeBits' frame buffer
	var held *heldCase // the lane's last case that decoded (same_case requests reuse it)
	for {
		var m msg
		if pending != nil {
			m, pending = *pending, nil
		} else {
			m = <-frames
		}
		f, err := m.f, m.err
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("worker: read request: %w", err)
		}
		switch f.Header.Type {
		case TypeBye:
			return nil
		case TypeRun:
		case TypeForget:
			held = nil // a fresh worker holds no case
			if err := o.gate.write(w, forgetReply(f, b)); err != nil {
				return err
			}
			continue
		default:
			if err := o.gate.write(w, errorFrame(f.Header.ID, KindBadRequest, fmt.Sprintf("unknown message type %q", f.Header.Type))); err != nil {
				return err
			}
			continue
		}
		type ran struct {
			res  *gpu.Result
			bits *rawcase.Result
			err  error
		}
		if !f.Header.SameCase {
			held = nil // the lane's previous case is garbage once this one decodes
		}
		tl := phase.New(o.Trace, "trace: worker ")
		sp := tl.Start("decode request")
		hc, opts, faults, err := decodeRun(f, b, held)
		sp.End()
		if err != nil {
			held = nil
			if err := o.gate.write(w, errorFrame(f.Header.ID, KindBadRequest, err.Error())); err != nil {
				return err
			}
			continue
		}
		cfg := hc.config()
		held = hc
		if cfg.Elements() > maxCachedElements { // a client caches no case this big: hold none
			held = nil
		}
		runCase := func(ctx context.Context) ran {
			if br, ok := b.(rawcase.Runner); ok {
				r, err := br.RunBits(ctx, hc.bits, opts, faults)
				if err == nil && r == nil {
					err = fmt.Errorf("worker: backend %s returned no result and no error", b.Name())
				}
				return ran{bits: r, err: err}
			}
			r, err := fault.Run(ctx, b, hc.c, opts, faults)
			return ran{res: r, err: err}
		}
		// The case runs in its own goroutine (a backend that needs one OS thread keeps its own,
		// as gpu/cuda does) while the next frame is awaited: when stdin ends mid-case the
		// client is gone, the case's context is cancelled, and after HangupGrace Serve returns
		// ErrHangup even if the backend does not observe its context.
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan ran, 1)
		sp = tl.Start("run")
		go func() { done <- runCase(ctx) }()
		var rr ran
		select {
		case rr = <-done:
		case m := <-frames:
			if m.err != nil { // the client hung up: nobody waits for the answer
				cancel()
				select {
				case <-done:
				case <-time.After(HangupGrace):
				}
				return ErrHangup
			}
			pending = &m // a frame before the answer: handled after it
			rr = <-done
		}
		cancel()
		sp.End()
		res, err := rr.res, rr.err
		if err != nil {
			kind, detail := KindInternal, err.Error()
			if ce, ok := gpu.AsCaseError(err); ok {
				detail = ce.Detail
				if ce.Err != nil {
					detail += ": " + ce.Err.Error()
				}
				switch ce.Kind {
				case gpu.Crashed:
					kind = KindCrash
				case gpu.TimedOut:
					kind = KindTimeout
				case gpu.OutOfMemory:
					kind = KindOOM
				case gpu.Raised:
					if v >= 2 {
						kind = KindRaised
					}
				}
			} else if u, ok := gpu.IsUnsupported(err); ok && v >= 2 {
				kind, detail = KindUnsupported, u.Reason
			}
			if werr := o.gate.write(w, errorFrame(f.Header.ID, kind, detail)); werr != nil {
				return werr
			}
			if kind == KindCrash {
				return ErrCrashed
			}
			continue
		}
		var size int64
		sp = tl.Start("write result")
		if rr.bits != nil {
			ts, n, err := bitsTensors(cfg, rr.bits, f.Header.ZeroTails)
			if err != nil {
				if werr := o.gate.write(w, errorFrame(f.Header.ID, KindInternal, err.Error())); werr != nil {
					return werr
				}
				continue
			}
			size = n
			if f.Header.ZeroTails {
				size = elideZeroTails(ts)
			}
			if err := o.gate.do(func() error { return writeBits(w, f.Header.ID, ts, size, &scratch) }); err != nil {
				return err
			}
		} else {
			ts, n := resultTensors(cfg, res)
			size = n
			if f.Header.ZeroTails {
				size = elideZeroTails(ts)
			}
			if err := o.gate.do(func() error { return writeTensors(w, f.Header.ID, ts, size, streamChunk) }); err != nil {
				return err
			}
		}
		sp.End()
		if size >= releaseBytes {
			// The result (with a backend that hands over its buffers, the run's state) is
			// garbage now, and an idle worker allocates nothing that would start a collection:
			// give the memory back while the client judges the result beside it (the case
			// and the result are dead past this point: the collection frees them).
			debug.FreeOSMemory()
		}
	}
}

// releaseBytes is the result size from which Serve returns the run's memory to the system
// after sending it (a collection costs milliseconds; a result of gigabytes held by an idle
// worker costs the client's host that much memory).
const releaseBytes = 256 << 20

// heldCase is a lane's case as decoded from its run request: the case header, and the case
// validated on its bits (for a rawcase.Runner, its tensors slices of the request's payload)
// or decoded.
type heldCase struct {
	ch   CaseHeader
	bits rawcase.Checked
	c    *moe.Case // the decoded case, for a backend that runs values
}

func (h *heldCase) config() moe.Config {
	if c := h.bits.Case(); c != nil {
		return c.Config
	}
	return h.c.Config
}

// decodeRun decodes run request f for backend b: a backend that runs cases as their bits
// gets them validated on their bits (decodeBits), any other the decoded case
// (decodeRequest). A same_case request runs held, the lane's previous case, when its header
// names that case and it carries no tensors.
func decodeRun(f *Frame, b gpu.Backend, held *heldCase) (*heldCase, gpu.RunOptions, fault.Set, error) {
	h := f.Header
	if h.SameCase {
		if h.Type != TypeRun || h.Case == nil || h.Options == nil {
			return nil, gpu.RunOptions{}, 0, fmt.Errorf("worker: not a run request (type %q)", h.Type)
		}
		if held == nil {
			return nil, gpu.RunOptions{}, 0, fmt.Errorf("worker: a same_case request, but the lane holds no case (no run request before it, or the one before was refused)")
		}
		if len(h.Tensors) != 0 || len(f.Payload) != 0 {
			return nil, gpu.RunOptions{}, 0, fmt.Errorf("worker: a same_case request with %d tensors and %d payload bytes (it has none)", len(h.Tensors), len(f.Payload))
		}
		ch := *h.Case
		ch.Legacy = false
		if ch != held.ch {
			return nil, gpu.RunOptions{}, 0, fmt.Errorf("worker: a same_case request for case %+v, but the lane holds %+v", ch, held.ch)
		}
		o, fs, err := requestOptions(f)
		return held, o, fs, err
	}
	var hc heldCase
	if h.Case != nil {
		hc.ch = *h.Case
		hc.ch.Legacy = false
	}
	var o gpu.RunOptions
	var fs fault.Set
	var err error
	if _, ok := b.(rawcase.Runner); ok {
		hc.bits, o, fs, err = decodeBits(f) // holds the payload: f's payload must not change
	} else {
		hc.c, o, fs, err = DecodeRequest(f)
		f.Payload = nil
	}
	if err != nil {
		return nil, o, fs, err
	}
	return &hc, o, fs, nil
}

func errorFrame(id uint64, kind, detail string) *Frame {
	return &Frame{Header: Header{Type: TypeError, ID: id, Kind: kind, Detail: detail}}
}
