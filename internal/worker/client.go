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
	"github.com/moecheck/moecheck/internal/phase"
	"github.com/moecheck/moecheck/moe"
)

// Defaults of Options.
const (
	DefaultTimeout      = 10 * time.Minute
	DefaultStartTimeout = 2 * time.Minute
	DefaultCommand      = "moecheck-worker"
	// DefaultForgetTimeout bounds a forget request (below Timeout). A forget drops what a
	// lane carries: the CUDA worker frees its pooled buffers (milliseconds), the PyTorch
	// worker synchronises the lane's stream (idle once its last result was sent), collects
	// garbage and releases the stream's cached blocks (seconds at most on a large heap). Ten
	// times that, so that a hung forget costs half a minute instead of a whole case timeout.
	DefaultForgetTimeout = 30 * time.Second
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
	// ForgetTimeout bounds a forget request (0 = DefaultForgetTimeout, never more than
	// Timeout). A worker that has not answered by then is killed; the next run starts a
	// fresh one, which carries nothing.
	ForgetTimeout time.Duration
	// Stderr, when set, receives a copy of the worker's standard error. The last 8 KiB are
	// always kept for the detail of case errors.
	Stderr io.Writer
	// Triage asks a version-2 worker without stage capture (Capabilities.Stages false) for
	// its op-level triage on runs that request stages (LastTriage returns the text). Off by
	// default: triage costs a second, recorded pass of the case.
	Triage bool
	// Trace, when non-nil, receives a timeline of each run (package internal/phase):
	// encoding the request, writing it, waiting for the result's first byte (the worker's
	// decode, run and first encoded chunk), and reading and decoding the result. Nil writes
	// nothing. A worker started with $MOECHECK_TRACE in its environment writes its own
	// timeline to its standard error; with Trace set and Stderr nil, that is copied to Trace.
	Trace io.Writer
}

// group is one worker process and the lanes it serves (NewLanes; New is a group of one).
type group struct {
	opts  Options
	lanes int

	// gate: a lane holds it shared while its case runs, and exclusively while it re-runs
	// alone a case that met a failure of the shared process (see RunFaults).
	gate sync.RWMutex

	mu         sync.Mutex // guards the fields below
	proc       *process
	started    bool // a process was started once (later starts are restarts)
	name       string
	device     string
	restarts   int
	version    int           // protocol version of the worker's hello
	caps       *Capabilities // its capabilities (nil: everything)
	sameCase   bool          // its hello accepts same_case requests
	zeroTails  bool          // its hello says it can send zero tails (zerotail.go)
	forget     bool          // its hello says it answers forget requests (forget.go)
	lastStderr string        // stderr tail of the last process that ended
	open       int           // lanes not closed
	reruns     int           // cases re-run alone after a failure of the shared process
	firstFail  string        // the first failure of the shared process that led to a re-run
	active     int           // attempts in flight (lanes sharing the process)
	seq        uint64        // attempts begun so far
}

// client is one lane of a group: the gpu.Backend of New and NewLanes. One case at a time.
type client struct {
	g    *group
	lane int

	mu         sync.Mutex // held for a whole Run
	closed     bool
	nextID     uint64
	lastTriage string   // triage text of the last result that had one
	cache      reqCache // the last case sent, encoded (reqcache.go)
	encodes    int      // cases encoded (not reused from the cache), for tests
	// held is the encoded case the lane's worker process holds: the case of the lane's last
	// request, answered with a result by process p (nil: none). A run of that case again is
	// sent as a same_case request, without its tensors.
	held struct {
		p   *process
		enc *encodedCase
	}
	sames int // same_case requests sent, for tests
}

// New starts a worker process and returns a gpu.Backend that runs cases in it. It fails
// when the worker cannot be started or does not speak protocol Version.
func New(opts Options) (gpu.Backend, error) {
	bs, err := NewLanes(opts, 1)
	if err != nil {
		return nil, err
	}
	return bs[0], nil
}

// MaxLanes bounds NewLanes (each lane is two pipes and, in the worker, a backend instance).
const MaxLanes = 256

// NewLanes starts one worker process that serves n lanes (docs/gpu.md, "Lanes") and returns
// a gpu.Backend per lane; different lanes may run cases at the same time, from different
// goroutines. With n > 1 the worker is asked for lanes through LanesEnv and must confirm them
// in its hello. Lane 0 speaks on the worker's stdin and stdout, lane k ≥ 1 on the inherited
// descriptors LaneFDs(k).
//
// A failure of the shared process — it dies, hangs past the timeout, answers crash or runs
// out of memory — reaches every lane that had a case in flight, so no such case is blamed
// for it directly: each is re-run alone (no other lane running, the worker restarted when it
// died), and the outcome of that lone run is its result. The case that crashes alone is the
// crash; the others get their normal results. A case that was the only one in flight from
// its start to its failure already ran alone: its outcome stands without a re-run.
func NewLanes(opts Options, n int) ([]gpu.Backend, error) {
	if n < 1 || n > MaxLanes {
		return nil, fmt.Errorf("worker: %d lanes: want between 1 and %d", n, MaxLanes)
	}
	if len(opts.Command) == 0 {
		opts.Command = []string{DefaultCommand}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.ForgetTimeout <= 0 {
		opts.ForgetTimeout = DefaultForgetTimeout
	}
	opts.ForgetTimeout = min(opts.ForgetTimeout, opts.Timeout)
	g := &group{opts: opts, lanes: n, open: n}
	if _, err := g.ensure(); err != nil {
		return nil, err
	}
	bs := make([]gpu.Backend, n)
	for k := range bs {
		bs[k] = &client{g: g, lane: k}
	}
	return bs, nil
}

// Name is "worker:" and the worker's backend name (as its hello said).
func (c *client) Name() string {
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	return "worker:" + c.g.name
}

// Info returns the worker's backend name, device description and how many times it was
// restarted after a case error (for a lane: its shared process's restarts).
func Info(b gpu.Backend) (backend, device string, restarts int, ok bool) {
	c, ok := b.(*client)
	if !ok {
		return "", "", 0, false
	}
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	return c.g.name, c.g.device, c.g.restarts, true
}

// Reruns returns how many cases the lanes of b's worker re-ran alone after a failure of the
// shared process (0 for a worker of one lane, or not a worker backend).
func Reruns(b gpu.Backend) int {
	c, ok := b.(*client)
	if !ok {
		return 0
	}
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	return c.g.reruns
}

// Lanes returns how many lanes share b's worker process (0: b is not a worker backend).
func Lanes(b gpu.Backend) int {
	c, ok := b.(*client)
	if !ok {
		return 0
	}
	return c.g.lanes
}

// process is one running worker.
type process struct {
	cmd    *exec.Cmd
	lanes  []laneIO
	stderr *tail
	done   chan struct{} // closed when Wait returned
	werr   error         // Wait's result, set before done is closed
	once   sync.Once     // the pipes are released once
}

// laneIO is the client's end of one lane: requests written to in, replies read from out.
type laneIO struct {
	in  io.WriteCloser
	out io.ReadCloser
}

// ensure returns the running process, starting one when there is none.
func (g *group) ensure() (*process, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.proc != nil {
		return g.proc, nil
	}
	if err := g.start(); err != nil {
		if g.started {
			return nil, fmt.Errorf("worker: restart: %w", err)
		}
		return nil, err
	}
	if g.started {
		g.restarts++
	}
	g.started = true
	return g.proc, nil
}

// drop forgets p (when it is still the group's process) after it ended or was killed.
func (g *group) drop(p *process) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.proc == p {
		g.proc, g.lastStderr = nil, p.stderr.String()
	}
}

// start launches the worker and reads every lane's hello; called with g.mu held.
func (g *group) start() error {
	o := g.opts
	cmd := exec.Command(o.Command[0], o.Command[1:]...)
	cmd.Env = o.Env
	if g.lanes > 1 {
		env := o.Env
		if env == nil {
			env = os.Environ()
		}
		cmd.Env = append(append([]string(nil), env...), fmt.Sprintf("%s=%d", LanesEnv, g.lanes))
	}
	cmd.Dir = o.Dir
	// Children of the worker that keep its stderr open must not stall Wait.
	cmd.WaitDelay = 2 * time.Second
	cp := o.Stderr
	if cp == nil {
		cp = o.Trace // the worker's own timeline (and anything else it says) next to ours
	}
	st := &tail{max: 8 << 10, copy: cp}
	cmd.Stderr = st
	lanes := make([]laneIO, g.lanes)
	var child []*os.File // the worker's ends, closed here once it started
	closeAll := func() {
		for _, f := range child {
			f.Close()
		}
		for _, l := range lanes {
			if l.in != nil {
				l.in.Close()
			}
			if l.out != nil {
				l.out.Close()
			}
		}
	}
	// Pipes of their own for every lane, stdin included, so that growPipe can widen them
	// (when a case is big: run).
	stdin, in, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	cmd.Stdin = stdin
	lanes[0].in = in
	child = append(child, stdin)
	// Our own pipes, not cmd.StdoutPipe: Wait closes the latter as soon as the process exits,
	// which races with reading the last frame (a crash report written just before the
	// worker exits would be lost). The read ends are closed when the process is discarded.
	for k := range lanes {
		out, pw, err := os.Pipe()
		if err != nil {
			closeAll()
			return fmt.Errorf("worker: %w", err)
		}
		lanes[k].out = out
		child = append(child, pw)
		if k == 0 {
			cmd.Stdout = pw
			continue
		}
		pr, in, err := os.Pipe()
		if err != nil {
			closeAll()
			return fmt.Errorf("worker: %w", err)
		}
		lanes[k].in = in
		child = append(child, pr)
		// Lane k's request pipe is the worker's descriptor 2k+1, its reply pipe 2k+2
		// (LaneFDs): ExtraFiles[i] becomes descriptor 3+i.
		cmd.ExtraFiles = append(cmd.ExtraFiles, pr, pw)
	}
	if err := cmd.Start(); err != nil {
		closeAll()
		return fmt.Errorf("worker: start %q: %w", strings.Join(o.Command, " "), err)
	}
	for _, f := range child { // the child holds them; EOF when it exits
		f.Close()
	}
	p := &process{cmd: cmd, lanes: lanes, stderr: st, done: make(chan struct{})}
	go func() {
		p.werr = cmd.Wait()
		close(p.done)
	}()
	type hello struct {
		lane int
		f    *Frame
		err  error
	}
	ch := make(chan hello, len(lanes))
	for k := range lanes {
		go func() {
			f, err := ReadFrame(lanes[k].out)
			ch <- hello{k, f, err}
		}()
	}
	t := time.NewTimer(o.StartTimeout)
	defer t.Stop()
	hellos := make([]*Frame, len(lanes))
	for range lanes {
		var h hello
		select {
		case h = <-ch:
		case <-t.C:
			p.kill()
			return fmt.Errorf("worker: no hello from %q within %v; stderr: %s", o.Command[0], o.StartTimeout, st.String())
		}
		if h.err != nil {
			p.kill()
			return fmt.Errorf("worker: %q did not say hello%s: %v; exit: %v; stderr: %s", o.Command[0], laneName(h.lane, len(lanes)), h.err, p.werr, st.String())
		}
		hh := h.f.Header
		if hh.Type != TypeHello || hh.Proto != Proto || hh.Version < MinVersion || hh.Version > Version {
			p.kill()
			return fmt.Errorf("worker: %q speaks %s version %d (first frame %q), want %s version %d to %d",
				o.Command[0], hh.Proto, hh.Version, hh.Type, Proto, MinVersion, Version)
		}
		if hh.Version == 1 && hh.Capabilities != nil {
			p.kill()
			return fmt.Errorf("worker: %q sent capabilities in a version-1 hello", o.Command[0])
		}
		if err := hh.Capabilities.Validate(); err != nil {
			p.kill()
			return fmt.Errorf("worker: %q: %w", o.Command[0], err)
		}
		if len(lanes) > 1 && hh.Lanes != len(lanes) {
			p.kill()
			return fmt.Errorf("worker: %q was asked for %d lanes (%s) and its hello%s declares %d: it does not serve lanes; use one lane per worker",
				o.Command[0], len(lanes), LanesEnv, laneName(h.lane, len(lanes)), hh.Lanes)
		}
		hellos[h.lane] = h.f
	}
	hh := hellos[0].Header
	g.proc, g.name, g.device = p, hh.Backend, hh.Device
	g.version, g.caps, g.sameCase, g.zeroTails, g.forget = hh.Version, hh.Capabilities, hh.SameCase, hh.ZeroTails, hh.Forget
	return nil
}

// laneName is " on lane k" for a group of several lanes, else "".
func laneName(k, n int) string {
	if n == 1 {
		return ""
	}
	return fmt.Sprintf(" on lane %d", k)
}

// kill ends the process and waits for it.
func (p *process) kill() {
	for _, l := range p.lanes {
		l.in.Close()
	}
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
	}
	<-p.done
	p.release()
}

// release closes the client's ends of every lane (once).
func (p *process) release() {
	p.once.Do(func() {
		for _, l := range p.lanes {
			l.in.Close()
			l.out.Close()
		}
	})
}

// ended waits up to 5 s for a process that is exiting by itself (after a crash), kills it
// past that, and releases its pipes.
func (p *process) ended() {
	select {
	case <-p.done:
		p.release()
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
	res *gpu.Result // decoded as it arrived (readReply), or nil
	err error
}

// await waits for the reply on ch for at most timeout, or until ctx ends. A worker
// that has not answered by then is killed and dropped (the next request starts a fresh one):
// timedOut, or ctx's error. A malformed reply kills and drops it too, and is an error
// wrapping ErrProtocol (with the worker's stderr). Any other reply, a read error included
// (the worker ended: the caller says what that means), is returned as it came. The run and
// forget requests share it.
func (g *group) await(ctx context.Context, p *process, ch <-chan reply, timeout time.Duration) (r reply, timedOut bool, err error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r = <-ch:
	case <-t.C:
		p.kill()
		g.drop(p)
		return r, true, nil
	case <-ctx.Done():
		p.kill()
		g.drop(p)
		return r, false, ctx.Err()
	}
	if r.err != nil && errors.Is(r.err, ErrMalformed) {
		p.kill()
		g.drop(p)
		return r, false, fmt.Errorf("%w: %w; stderr: %s", ErrProtocol, r.err, strings.TrimSpace(p.stderr.String()))
	}
	return r, false, nil
}

// Run sends the case to the worker (starting one if the last died) and waits for its result.
func (c *client) Run(ctx context.Context, cs *moe.Case, o gpu.RunOptions) (*gpu.Result, error) {
	return c.RunFaults(ctx, cs, o, 0)
}

// RunFaults is Run with the harness's faults switched on in the worker (fault.Runner). On a
// lane of several, a case that meets a failure of the shared process is re-run alone (see
// NewLanes) and the lone run's outcome is returned as it is, so that records do not depend
// on the number of lanes (Reruns counts the lone re-runs).
func (c *client) RunFaults(ctx context.Context, cs *moe.Case, o gpu.RunOptions, fs fault.Set) (*gpu.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.g
	if g.lanes == 1 {
		res, _, err := c.attempt(ctx, cs, o, fs)
		return res, err
	}
	g.gate.RLock()
	overlap := g.begin()
	res, shared, err := c.attempt(ctx, cs, o, fs)
	alone := !overlap() // no other lane had a case in flight at any moment of this attempt
	g.gate.RUnlock()
	if !shared || alone {
		return res, err
	}
	if ctx.Err() != nil { // interrupted: no lone re-run (it would restart the worker)
		return nil, ctx.Err()
	}
	// The failure may be another lane's: run the case again with no other lane running.
	g.gate.Lock()
	defer g.gate.Unlock()
	g.mu.Lock()
	g.reruns++
	if g.firstFail == "" && err != nil {
		g.firstFail = err.Error()
	}
	g.mu.Unlock()
	res, _, err = c.attempt(ctx, cs, o, fs)
	return res, err
}

// FirstSharedFailure returns the error of the first failure of b's shared worker process
// that made a lane re-run its case alone ("" if none): a lone re-run that passes leaves no
// other trace of why the process failed.
func FirstSharedFailure(b gpu.Backend) string {
	c, ok := b.(*client)
	if !ok {
		return ""
	}
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	return c.g.firstFail
}

// begin registers an attempt in flight; the function it returns ends it and reports
// whether another lane's attempt was in flight at any moment in between (one was already
// running at the start, or one started since).
func (g *group) begin() func() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	busy := g.active > 0
	seq := g.seq
	g.active++
	g.seq++
	return func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.active--
		return busy || g.seq-seq > 1
	}
}

// attempt runs the case once on the lane. shared reports an outcome that a failure of the
// process (or of the device) could have caused for a case of another lane: the process
// died, was killed for a timeout, answered crash, timeout or out of memory.
func (c *client) attempt(ctx context.Context, cs *moe.Case, o gpu.RunOptions, fs fault.Set) (res *gpu.Result, shared bool, err error) {
	g := c.g
	p, err := g.ensure()
	if err != nil {
		return nil, false, err
	}
	g.mu.Lock()
	caps, version, sameCase, zeroTails := g.caps, g.version, g.sameCase, g.zeroTails
	g.mu.Unlock()
	if err := caps.Supports(cs, o, fs); err != nil {
		return nil, false, err
	}
	triage := false
	if caps != nil && !caps.Stages {
		// A black-box path: no stage intermediates; with triage, stages asks for op triage.
		triage = g.opts.Triage && o.Stages && caps.Triage
		o.Stages = false
	}
	c.nextID++
	id := c.nextID
	tl := phase.New(g.opts.Trace, "trace: worker client ")
	ph := tl.Start("encode request")
	enc, hit, err := c.cache.encode(cs)
	ph.End()
	if err != nil {
		return nil, false, err
	}
	if !hit {
		c.encodes++
	}
	var req *Frame
	if sameCase && hit && c.held.p == p && c.held.enc == enc {
		req = enc.sameRequest(id, o, fs)
		c.sames++
	} else {
		req = enc.request(id, o, fs)
	}
	// Until a result says otherwise, the process holds no case of this lane's (a refused
	// request, an error, a restart: the next run sends its tensors).
	c.held.p, c.held.enc = nil, nil
	if version == 1 {
		req.Header.Case.Legacy = true
	}
	req.Header.Options.Triage = triage
	req.Header.ZeroTails = zeroTails
	l := p.lanes[c.lane]
	ch := make(chan reply, 1)
	// Pipes are widened for big cases only, when they come: Linux counts every pipe's pages
	// against a per-user soft limit (pipe-user-pages-soft, 64 MiB by default), past which
	// every new pipe of the user, in any process, gets two pages; widening every lane's pair
	// up front used it up at 32 lanes (the torch default is 64 jobs per device).
	if int64(len(req.Payload)) > pipeSize {
		growPipe(l.in)
	}
	if maxResultBytes(cs.Config) > pipeSize {
		growPipe(l.out)
	}
	go func() {
		ph := tl.Start("write request")
		if err := WriteFrame(l.in, req); err != nil {
			// The worker died or stopped reading; the read below sees it end.
			_ = err
		}
		ph.End()
		var out io.Reader = l.out
		if tl != nil {
			out = &firstRead{r: l.out, wait: tl.Start("wait for the result"), tl: tl}
		}
		f, res, err := readReply(out, maxResultBytes(cs.Config), cs.Config)
		if fr, ok := out.(*firstRead); ok {
			fr.done()
		}
		ch <- reply{f, res, err}
	}()
	r, timedOut, err := g.await(ctx, p, ch, g.opts.Timeout)
	switch {
	case timedOut:
		return nil, true, &gpu.CaseError{Kind: gpu.TimedOut, Detail: fmt.Sprintf("no result within %v; worker killed; stderr: %s", g.opts.Timeout, strings.TrimSpace(p.stderr.String()))}
	case err != nil:
		return nil, false, err
	}
	if r.err != nil {
		// The worker ended mid-case: a kernel fault, a signal, an exit (or another lane's
		// timeout killed it).
		p.ended()
		g.drop(p)
		return nil, true, &gpu.CaseError{Kind: gpu.Crashed, Detail: p.exitDetail(), Err: r.err}
	}
	h := r.f.Header
	if h.ID != id {
		p.kill()
		g.drop(p)
		return nil, false, fmt.Errorf("%w: reply to request %d, want %d", ErrProtocol, h.ID, id)
	}
	switch h.Type {
	case TypeResult:
		// Keep the last triage that found something over a later clean one (a zero-fill
		// rerun of the same case reports nothing non-finite).
		if h.Triage != "" && (strings.Contains(h.Triage, "non-finite values found") || !strings.Contains(c.lastTriage, "non-finite values found")) {
			c.lastTriage = h.Triage
		}
		res := r.res
		if res == nil {
			var err error
			if res, err = DecodeResult(r.f, cs.Config); err != nil {
				p.kill()
				g.drop(p)
				return nil, false, fmt.Errorf("%w: %w", ErrProtocol, err)
			}
		}
		c.held.p, c.held.enc = p, enc
		return res, false, nil
	case TypeError:
		if h.Kind == KindBadRequest && req.Header.SameCase {
			// The worker no longer holds the case (or refuses to reuse it): send it whole.
			return c.attempt(ctx, cs, o, fs)
		}
		switch h.Kind {
		case KindCrash:
			// The worker exits after a crash (its device state is lost); wait for it.
			p.ended()
			g.drop(p)
			return nil, true, &gpu.CaseError{Kind: gpu.Crashed, Detail: withStderr(h.Detail, p.stderr.String())}
		case KindTimeout:
			return nil, true, &gpu.CaseError{Kind: gpu.TimedOut, Detail: h.Detail}
		case KindOOM:
			return nil, true, &gpu.CaseError{Kind: gpu.OutOfMemory, Detail: withStderr(h.Detail, p.stderr.String())}
		case KindRaised:
			if version >= 2 {
				d := h.Detail
				if tb := strings.TrimSpace(h.Traceback); tb != "" {
					d += "\n" + tb
				}
				return nil, false, &gpu.CaseError{Kind: gpu.Raised, Detail: d}
			}
		case KindUnsupported:
			if version >= 2 {
				return nil, false, &gpu.UnsupportedError{Reason: h.Detail}
			}
		}
		return nil, false, fmt.Errorf("worker: %s: %s", h.Kind, h.Detail)
	}
	p.kill()
	g.drop(p)
	return nil, false, fmt.Errorf("%w: unexpected reply type %q", ErrProtocol, h.Type)
}

// firstRead is the reply's reader of a traced run: it ends the wait phase at the reply's
// first byte and times the rest (reading and decoding) as the next phase.
type firstRead struct {
	r    io.Reader
	tl   *phase.Timeline
	wait phase.Span
	read phase.Span
	got  bool
}

func (f *firstRead) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if !f.got && n > 0 {
		f.got = true
		f.wait.End()
		f.read = f.tl.Start("read and decode the result")
	}
	return n, err
}

// done ends the read phase (or the wait, when nothing came).
func (f *firstRead) done() {
	if f.got {
		f.read.End()
	} else {
		f.wait.End()
	}
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

// Close closes the lane; closing the last lane of a group asks the worker to exit and waits
// for it (killing it after 10 s).
func (c *client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.g
	g.mu.Lock()
	if c.closed {
		g.mu.Unlock()
		return nil
	}
	c.closed = true
	c.cache = reqCache{}
	c.held.p, c.held.enc = nil, nil
	g.open--
	p := g.proc
	if g.open > 0 || p == nil {
		g.mu.Unlock()
		return nil
	}
	g.proc = nil
	g.mu.Unlock()
	for _, l := range p.lanes {
		_ = WriteFrame(l.in, &Frame{Header: Header{Type: TypeBye}})
		l.in.Close()
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
	p.release()
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
