package props

import (
	"context"
	"testing"
	"time"

	"github.com/moecheck/moecheck/gpu/sim"
)

// TestCheckCaseInterrupt: an interrupt waited for the case in flight (11–17 s for a preset
// case); CheckTrial now returns as soon as the context ends, even when the property's
// computation does not look at it.
func TestCheckCaseInterrupt(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	slow := Property{Name: "slow", Check: func(ctx context.Context, env *Env, _ Trial) (*Outcome, error) {
		<-release // a long reference/oracle pass that never checks ctx
		return pass("slow", nil), nil
	}}
	spec, _ := SpecAt(1, 0, GenOptions{})
	tr, err := SpecTrial(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		_, _, err := CheckTrial(ctx, &Env{Backend: sim.New(sim.Options{})}, []Property{slow}, tr)
		done <- err
	}()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("CheckCase still waiting for the computation 10 s after the interrupt")
	}
}
