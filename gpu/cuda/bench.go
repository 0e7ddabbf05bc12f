//go:build cuda

package cuda

import (
	"fmt"
	"sort"

	"gorgonia.org/cu"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/moe"
)

// StageTime is the median device time of one stage over the timed repeats.
type StageTime struct {
	Stage string
	Ms    float64
}

// Timing is what Bench measured: per-stage medians and the median of the whole path
// (forward and backward, routing included), from CUDA events on the lane's stream.
type Timing struct {
	Stages  []StageTime
	TotalMs float64 // median over repeats of the whole path
	Repeats int
}

// Stage returns the median of the named stage (0 if absent).
func (t *Timing) Stage(name string) float64 {
	for _, s := range t.Stages {
		if s.Stage == name {
			return s.Ms
		}
	}
	return 0
}

// Bench runs the path on c warmup times, then reps times with a CUDA event before each
// stage and after the last, without guard checks or synchronization between stages.
// Inputs are uploaded and buffers poisoned once (policy o.Poison), outside the timing.
func (b *Backend) Bench(c *moe.Case, o gpu.RunOptions, warmup, reps int) (*Timing, error) {
	if err := c.Validate(moe.Limits{}); err != nil {
		return nil, err
	}
	if reps < 1 {
		reps = 1
	}
	var t *Timing
	err := b.do(func() error {
		if lost := b.sh.lostErr(); lost != nil {
			return fmt.Errorf("cuda: context lost: %w", lost)
		}
		r, err := b.prepare(c, runOpts{RunOptions: o}, false)
		if err != nil {
			return b.fail("setup", err)
		}
		n := len(r.stages)
		ev := make([]cu.Event, n+1)
		for i := range ev {
			if ev[i], err = cu.MakeEvent(cu.DefaultEvent); err != nil {
				return err
			}
		}
		defer func() {
			for i := range ev {
				cu.DestroyEvent(&ev[i])
			}
		}()
		times := make([][]float64, n+1) // per stage; [n] = total
		for it := 0; it < warmup+reps; it++ {
			for i, s := range r.stages {
				if err := ev[i].Record(b.stream); err != nil {
					return err
				}
				if err := s.run(); err != nil {
					return b.fail(s.name, err)
				}
			}
			if err := ev[n].Record(b.stream); err != nil {
				return err
			}
			if err := ev[n].Synchronize(); err != nil {
				return b.fail("bench", err)
			}
			if it < warmup {
				continue
			}
			for i := 0; i < n; i++ {
				ms, err := ev[i].Elapsed(ev[i+1])
				if err != nil {
					return err
				}
				times[i] = append(times[i], ms)
			}
			ms, err := ev[0].Elapsed(ev[n])
			if err != nil {
				return err
			}
			times[n] = append(times[n], ms)
		}
		if err := r.checkNow("bench"); err != nil {
			return b.fail("bench", err)
		}
		t = &Timing{Repeats: reps, TotalMs: median(times[n])}
		for i, s := range r.stages {
			t.Stages = append(t.Stages, StageTime{s.name, median(times[i])})
		}
		return nil
	})
	return t, err
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
