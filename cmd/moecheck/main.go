package main

import (
	"bufio"
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/moecheck/moecheck/internal/prof"
)

func main() {
	restartForOpenBLAS()
	mem := memTotal()
	setMemoryLimit(mem)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProf := prof.Start(os.Getenv(prof.EnvVar), os.Args[0], os.Stderr)
	code := Execute(ctx, os.Args[1:], Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Memory: mem})
	stopProf()
	stop()
	os.Exit(code)
}

// setMemoryLimit makes the garbage collector work harder before the process would exceed 3/4
// of the machine's memory (unless GOMEMLIMIT says otherwise): real-shape preset cases hold
// gigabytes, and without a limit the heap may grow to twice the live data between
// collections.
func setMemoryLimit(mem int64) {
	if os.Getenv("GOMEMLIMIT") != "" || mem <= 0 {
		return
	}
	debug.SetMemoryLimit(mem / 4 * 3)
}

// memTotal is the machine's memory in bytes from /proc/meminfo (0 where unknown).
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			if kb, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
				return kb << 10
			}
			return 0
		}
	}
	return 0
}
