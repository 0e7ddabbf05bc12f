//go:build cuda

package cuda

import (
	"context"
	"fmt"

	"gorgonia.org/cu"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// guardPokeOffset is the byte of the guard zone GuardProbe overwrites.
const guardPokeOffset = 12

// guardPoke is GuardProbe's injected out-of-bounds write.
type guardPoke struct {
	stage, buf string
	once       bool // only in the first run of the case (a re-run does not reproduce it)
	done       bool // fired in a run (with once: no more)
}

// poke overwrites, after stage, one byte of the guard zone after the probe's buffer (when
// the run has a probe for this stage).
func (r *pathRun) poke(stage string) error {
	p := r.o.poke
	if p == nil || p.stage != stage || (p.once && p.done) {
		return nil
	}
	for i, d := range r.guarded {
		if d.name == p.buf {
			p.done = true
			v := ^guardByte(uint64(2*i+1), guardPokeOffset)
			return r.b.memset8(d.data+cu.DevicePtr(d.n+guardPokeOffset), v, 1)
		}
	}
	return fmt.Errorf("guard probe: the path has no buffer %q", p.buf)
}

// GuardProbe runs c as Run does, with an out-of-bounds write injected after stage: one byte
// of the guard zone after buffer buf is overwritten (a driver memset on the lane's stream,
// as a kernel writing past the buffer's end would). With once, only the first run of the
// case has it, so the re-run that names the stage does not reproduce it. It returns Run's
// error, for the self-test to check that the damage is found and attributed; a stage or
// buffer the case's path does not have is an error. The lane stays usable (the next run
// rewrites every guard zone).
func (b *Backend) GuardProbe(ctx context.Context, c *moe.Case, o gpu.RunOptions, stage, buf string, once bool) error {
	if err := c.Validate(moe.Limits{}); err != nil {
		return err
	}
	if !o.Poison.Valid() {
		return fmt.Errorf("cuda: unknown poison policy %d", o.Poison)
	}
	p := &guardPoke{stage: stage, buf: buf, once: once}
	err := b.do(func() error {
		if lost := b.sh.lostErr(); lost != nil {
			return &gpu.CaseError{Kind: gpu.Crashed, Detail: "CUDA context lost by an earlier fault", Err: lost}
		}
		_, err := b.runPath(c, runOpts{RunOptions: o, poke: p}, nil)
		return err
	})
	if err == nil && !p.done {
		return fmt.Errorf("guard probe: the path of %s has no stage %q", c.Config, stage)
	}
	return err
}
