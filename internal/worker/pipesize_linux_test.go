package worker

import (
	"context"
	"os"
	"syscall"
	"testing"

	"github.com/moecheck/moecheck/gpu"
	"github.com/moecheck/moecheck/internal/casetest"
	"github.com/moecheck/moecheck/moe"
)

// pipeCap is a pipe's capacity (F_GETPIPE_SZ).
func pipeCap(t *testing.T, x any) int {
	t.Helper()
	f, ok := x.(*os.File)
	if !ok {
		t.Fatalf("lane end %T is not a file", x)
	}
	const getPipeSize = 1032 // F_GETPIPE_SZ
	n, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), getPipeSize, 0)
	if errno != 0 {
		t.Fatalf("F_GETPIPE_SZ: %v", errno)
	}
	return int(n)
}

// TestPipesGrowForBigCasesOnly: a lane's pipes keep the system's default size for small
// cases and are widened when a big one comes (regression: every lane's pair was widened at
// start, 2 MiB per lane against the user's 64 MiB pipe budget, so 64 jobs used it up and
// every later pipe of the user got two pages).
func TestPipesGrowForBigCasesOnly(t *testing.T) {
	b := helperWith(t, Version, nil)
	small := moe.Config{T: 2, H: 8, I: 8, E: 2, K: 2, DType: moe.BF16}
	c := casetest.Case(t, small, 1)
	if _, err := b.Run(context.Background(), c, gpu.RunOptions{Poison: gpu.PoisonNaN}); err != nil {
		t.Fatal(err)
	}
	g := b.(*client).g
	p, err := g.ensure()
	if err != nil {
		t.Fatal(err)
	}
	in0, out0 := pipeCap(t, p.lanes[0].in), pipeCap(t, p.lanes[0].out)
	if in0 >= pipeSize || out0 >= pipeSize {
		t.Fatalf("after a small case the pipes hold %d and %d bytes, want the default (below %d)", in0, out0, pipeSize)
	}
	if _, err := b.Run(context.Background(), streamedCase(t), gpu.RunOptions{Poison: gpu.PoisonNaN}); err != nil {
		t.Fatal(err)
	}
	if got := pipeCap(t, p.lanes[0].out); got != pipeSize {
		t.Skipf("the reply pipe holds %d bytes after a big case, want %d (refused here: pipe-max-size or the user's pipe budget)", got, pipeSize)
	}
}
