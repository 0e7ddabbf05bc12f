package phase

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// EnvVar names the environment variable the commands read: any non-empty value writes the
// timeline to stderr.
const EnvVar = "MOECHECK_TRACE"

// Timeline writes one line per phase to its writer. Its methods are safe on a nil
// *Timeline (they do nothing) and for concurrent use.
type Timeline struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	t0     time.Time
}

// New returns a timeline writing to w whose lines start with prefix; nil when w is nil.
func New(w io.Writer, prefix string) *Timeline {
	if w == nil {
		return nil
	}
	return &Timeline{w: w, prefix: prefix, t0: time.Now()}
}

// Span is a phase in progress, ended by End.
type Span struct {
	t    *Timeline
	name string
	wall time.Time
	cpu  cpuTime
}

// Start starts phase name.
func (t *Timeline) Start(name string) Span {
	if t == nil {
		return Span{}
	}
	return Span{t: t, name: name, wall: time.Now(), cpu: cpuSeconds()}
}

// End writes the phase's line: its wall time, the process's CPU time over it (user +
// system, and system alone: page faults and the kernel's share), their ratio,
// and the time since the timeline began.
func (s Span) End() {
	t := s.t
	if t == nil {
		return
	}
	now, cpu := time.Now(), cpuSeconds()
	wall := now.Sub(s.wall).Seconds()
	c, sys := cpu.user+cpu.sys-s.cpu.user-s.cpu.sys, cpu.sys-s.cpu.sys
	cores := 0.0
	if wall > 0 {
		cores = c / wall
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%s%-28s wall %8.3fs  cpu %8.3fs (sys %7.3fs)  cores %5.2f  (at %.2fs)\n", t.prefix, s.name, wall, c, sys, cores, now.Sub(t.t0).Seconds())
}

// Time runs f as phase name.
func (t *Timeline) Time(name string, f func()) {
	s := t.Start(name)
	f()
	s.End()
}
