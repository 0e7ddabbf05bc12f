package worker

import (
	"context"
	"errors"
	"fmt"
	"github.com/moecheck/moecheck/internal/fault"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// Defaults of Options.
const (
	DefaultTimeout      = 10 * time.Minute
	DefaultStartTimeout = 2 * time.Minute
	DefaultCommand      = "moecheck-worker"
)

// Options configure New. The zero value is valid: it runs `moecheck-worker` from PATH with
// its default backend, a 10-minute per-case timeout and a 2-minute start timeout.
type Options struct {
	// Command is the worker's argv ([0] is looked up on PATH); empty means DefaultCommand.
	Command []string
	// Env, when non-nil, is the worker's whole environment (as exec.Cmd.Env).
	Env []string
	// Dir is the worker's working directory ("" = the caller's).
	Dir string
	// Timeout bounds one case, from sending the request to the whole result (0 =
	// DefaultTimeout). A case past it is a hang: the worker is killed and Run returns a
	// TimedOut *gpu.CaseError.
	Timeout time.Duration
	// StartTimeout bounds a worker's start up to its hello (CUDA init and PTX JIT included);
	// 0 = DefaultStartTimeout.
	StartTimeout time.Duration
	// Stderr, when set, receives a copy of the worker's standard error. The last 8 KiB are
	// always kept for the detail of case errors.
	Stderr io.Writer
	// Triage asks a version-2 worker without stage capture (Capabilities.Stages false) for
	// its op-level triage on runs that request stages (LastTriage returns the text). Off by
	// default: triage costs a second, recorded pass of the case.
	Triage bool
}

// client is the gpu.Backend of New.
type client struct {
	opts Options

	mu       sync.Mutex
	proc     *process
	name     string
	device   string
	nextID   uint64
	restarts int

	version    int           // protocol version of the worker's hello
	caps       *Capabilities // its capabilities (nil: everything)
	lastStderr string        // stderr tail of the last process that ended
	lastTriage string        // triage text of the last result that had one
}

// New starts a worker process and returns a gpu.Backend that runs cases in it. It fails
// when the worker cannot be started or does not speak protocol Version.
func New(opts Options) (gpu.Backend, error) {
	if len(opts.Command) == 0 {
		opts.Command = []string{DefaultCommand}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	c := &client{opts: opts}
	if err := c.start(); err != nil {
		return nil, err
	}
	return c, nil
}

// Name is "worker:" and the worker's backend name (as its hello said).
func (c *client) Name() string { return "worker:" + c.name }

// Info returns the worker's backend name, device description and how many times it was
// restarted after a case error.
func Info(b gpu.Backend) (backend, device string, restarts int, ok bool) {
	c, ok := b.(*client)
	if !ok {
		return "", "", 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.name, c.device, c.restarts, true
}

// process is one running worker.
type process struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr *tail
	done   chan struct{} // closed when Wait returned
	werr   error         // Wait's result, set before done is closed
}

func (c *client) start() error {
	cmd := exec.Command(c.opts.Command[0], c.opts.Command[1:]...)
	cmd.Env = c.opts.Env
	cmd.Dir = c.opts.Dir
	// Children of the worker that keep its stderr open must not stall Wait.
	cmd.WaitDelay = 2 * time.Second
	st := &tail{max: 8 << 10, copy: c.opts.Stderr}
	cmd.Stderr = st
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	// Our own pipe, not cmd.StdoutPipe: Wait closes the latter as soon as the process exits,
	// which races with reading the last frame (a crash report written just before the
	// worker exits would be lost). The read end is closed when the process is discarded.
	stdout, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		stdout.Close()
		pw.Close()
		return fmt.Errorf("worker: start %q: %w", strings.Join(c.opts.Command, " "), err)
	}
	pw.Close() // the child holds the write end; EOF when it exits
	p := &process{cmd: cmd, stdin: stdin, stdout: stdout, stderr: st, done: make(chan struct{})}
	go func() {
		p.werr = cmd.Wait()
		close(p.done)
	}()
	type hello struct {
		f   *Frame
		err error
	}
	ch := make(chan hello, 1)
	go func() {
		f, err := ReadFrame(stdout)
		ch <- hello{f, err}
	}()
	t := time.NewTimer(c.opts.StartTimeout)
	defer t.Stop()
	var h hello
	select {
	case h = <-ch:
	case <-t.C:
		p.kill()
		return fmt.Errorf("worker: no hello from %q within %v; stderr: %s", c.opts.Command[0], c.opts.StartTimeout, st.String())
	}
	if h.err != nil {
		p.kill()
		return fmt.Errorf("worker: %q did not say hello: %v; exit: %v; stderr: %s", c.opts.Command[0], h.err, p.werr, st.String())
	}
	hh := h.f.Header
	if hh.Type != TypeHello || hh.Proto != Proto || hh.Version < MinVersion || hh.Version > Version {
		p.kill()
		return fmt.Errorf("worker: %q speaks %s version %d (first frame %q), want %s version %d to %d",
			c.opts.Command[0], hh.Proto, hh.Version, hh.Type, Proto, MinVersion, Version)
	}
	if hh.Version == 1 && hh.Capabilities != nil {
		p.kill()
		return fmt.Errorf("worker: %q sent capabilities in a version-1 hello", c.opts.Command[0])
	}
	if err := hh.Capabilities.Validate(); err != nil {
		p.kill()
		return fmt.Errorf("worker: %q: %w", c.opts.Command[0], err)
	}
	c.proc, c.name, c.device = p, hh.Backend, hh.Device
	c.version, c.caps = hh.Version, hh.Capabilities
	return nil
}

// kill ends the process and waits for it.
func (p *process) kill() {
	p.stdin.Close()
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
	}
	<-p.done
	p.stdout.Close()
}

// ended waits up to 5 s for a process that is exiting by itself (after a crash), kills it
// past that, and releases its pipes.
func (p *process) ended() {
	select {
	case <-p.done:
		p.stdin.Close()
		p.stdout.Close()
	case <-time.After(5 * time.Second):
		p.kill()
	}
}

// exitDetail describes how the process ended, with the tail of its stderr.
func (p *process) exitDetail() string {
	s := "worker exited"
	if p.werr != nil {
		s += ": " + p.werr.Error()
	}
	if t := strings.TrimSpace(p.stderr.String()); t != "" {
		s += "; stderr: " + t
	}
	return s
}

// ErrProtocol wraps every error Run returns for a reply that breaks the protocol: a
// malformed frame, a reply to another request, an unknown type, a result whose tensors do
// not fit the case. The worker is killed (a fresh one starts on the next Run); the error is
// the worker's, not the kernel's, so it is not a *gpu.CaseError.
var ErrProtocol = errors.New("worker protocol error")

// maxResultBytes bounds the payload of a result for a case of config cfg: every output and
// stage tensor at 4 bytes per element (fp32 is the widest dtype on the wire, i32 the stage
// indices'), never more than MaxPayloadBytes.
func maxResultBytes(cfg moe.Config) int64 {
	S, H, I, E := int64(cfg.S()), int64(cfg.H), int64(cfg.I), int64(cfg.E)
	outs := 2*int64(cfg.LenX()) + int64(cfg.LenW1()) + int64(cfg.LenW2()) + int64(cfg.LenB1()) + int64(cfg.LenB2()) + S
	stages := S + E + S*(6*H+6*I) + S*H // perm, offsets; xs h2 o d_o d_h2 d_xs (H each), h1 d_h1 (2I each), act d_act (I each); slack row set
	n := 4 * (outs + stages)
	if n < 0 || n > MaxPayloadBytes {
		return MaxPayloadBytes
	}
	return n
}

type reply struct {
	f   *Frame
	err error
}

// Run sends the case to the worker (starting one if the last died) and waits for its result.
func (c *client) Run(ctx context.Context, cs *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	return c.RunFaults(ctx, cs, o, 0)
}

// RunFaults is Run with the harness's faults switched on in the worker (fault.Runner).
func (c *client) RunFaults(ctx context.Context, cs *moe.Case, o gpu.RunOptions, fs fault.Set) (*gpu.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		if err := c.start(); err != nil {
			return nil, fmt.Errorf("worker: restart: %w", err)
		}
		c.restarts++
	}
	if err := c.caps.Supports(cs, o, fs); err != nil {
		return nil, err
	}
	triage := false
	if c.caps != nil && !c.caps.Stages {
		// A black-box path: no stage intermediates; with triage, stages asks for op triage.
		triage = c.opts.Triage && o.Stages && c.caps.Triage
		o.Stages = false
	}
	c.nextID++
	id := c.nextID
	req, err := EncodeRequest(id, cs, o, fs)
	if err != nil {
		return nil, err
	}
	if c.version == 1 {
		req.Header.Case.Legacy = true
	}
	req.Header.Options.Triage = triage
	p := c.proc
	ch := make(chan reply, 1)
	go func() {
		if err := WriteFrame(p.stdin, req); err != nil {
			// The worker died or stopped reading; the read below sees it end.
			_ = err
		}
		f, err := readFrame(p.stdout, maxResultBytes(cs.Config))
		ch <- reply{f, err}
	}()
	t := time.NewTimer(c.opts.Timeout)
	defer t.Stop()
	var r reply
	select {
	case r = <-ch:
	case <-t.C:
		p.kill()
		c.proc = nil
		return nil, &gpu.CaseError{Kind: gpu.TimedOut, Detail: fmt.Sprintf("no result within %v; worker killed; stderr: %s", c.opts.Timeout, strings.TrimSpace(p.stderr.String()))}
	case <-ctx.Done():
		p.kill()
		c.proc = nil
		return nil, ctx.Err()
	}
	if r.err != nil && errors.Is(r.err, ErrMalformed) {
		p.kill()
		c.proc = nil
		return nil, fmt.Errorf("%w: %w; stderr: %s", ErrProtocol, r.err, strings.TrimSpace(p.stderr.String()))
	}
	if r.err != nil {
		// The worker ended mid-case: a kernel fault, a signal, an exit.
		p.ended()
		c.proc, c.lastStderr = nil, p.stderr.String()
		return nil, &gpu.CaseError{Kind: gpu.Crashed, Detail: p.exitDetail(), Err: r.err}
	}
	h := r.f.Header
	if h.ID != id {
		p.kill()
		c.proc = nil
		return nil, fmt.Errorf("%w: reply to request %d, want %d", ErrProtocol, h.ID, id)
	}
	switch h.Type {
	case TypeResult:
		// Keep the last triage that found something over a later clean one (a zero-fill
		// rerun of the same case reports nothing non-finite).
		if h.Triage != "" && (strings.Contains(h.Triage, "non-finite values found") || !strings.Contains(c.lastTriage, "non-finite values found")) {
			c.lastTriage = h.Triage
		}
		res, err := DecodeResult(r.f, cs.Config)
		if err != nil {
			p.kill()
			c.proc = nil
			return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		return res, nil
	case TypeError:
		switch h.Kind {
		case KindCrash:
			// The worker exits after a crash (its device state is lost); wait for it.
			p.ended()
			c.proc, c.lastStderr = nil, p.stderr.String()
			return nil, &gpu.CaseError{Kind: gpu.Crashed, Detail: withStderr(h.Detail, c.lastStderr)}
		case KindTimeout:
			return nil, &gpu.CaseError{Kind: gpu.TimedOut, Detail: h.Detail}
		case KindOOM:
			return nil, &gpu.CaseError{Kind: gpu.OutOfMemory, Detail: withStderr(h.Detail, p.stderr.String())}
		case KindRaised:
			if c.version >= 2 {
				d := h.Detail
				if tb := strings.TrimSpace(h.Traceback); tb != "" {
					d += "\n" + tb
				}
				return nil, &gpu.CaseError{Kind: gpu.Raised, Detail: d}
			}
		case KindUnsupported:
			if c.version >= 2 {
				return nil, &gpu.UnsupportedError{Reason: h.Detail}
			}
		}
		return nil, fmt.Errorf("worker: %s: %s", h.Kind, h.Detail)
	}
	p.kill()
	c.proc = nil
	return nil, fmt.Errorf("%w: unexpected reply type %q", ErrProtocol, h.Type)
}

// withStderr appends the last lines of a worker's stderr to a case error's detail.
func withStderr(detail, stderr string) string {
	t := strings.TrimSpace(stderr)
	if t == "" || strings.Contains(detail, t) {
		return detail
	}
	if len(t) > 2048 {
		t = "…" + t[len(t)-2048:]
	}
	return detail + "; worker stderr: " + t
}

// Close asks the worker to exit and waits for it (killing it after 10 s).
func (c *client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.proc
	if p == nil {
		return nil
	}
	c.proc = nil
	_ = WriteFrame(p.stdin, &Frame{Header: Header{Type: TypeBye}})
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
	p.stdout.Close()
	var ee *exec.ExitError
	if p.werr != nil && !errors.As(p.werr, &ee) {
		return fmt.Errorf("worker: %w", p.werr)
	}
	return nil
}

// tail keeps the last max bytes written to it and copies everything to copy.
type tail struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	copy io.Writer
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.copy != nil {
		t.copy.Write(p)
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
