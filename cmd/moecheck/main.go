// Command moecheck proves grouped-GEMM Mixture-of-Experts paths correct against a float64
// reference with derived bounds, poisoned memory and property-based testing.
//
// Usage:
//
//	moecheck check      random property run (sharded, budgeted), shrinking and a reproduce line
//	moecheck replay     run corpus cases through every property
//	moecheck save       save a failing spec or fuzz crasher into corpus/regressions
//	moecheck mutants    mutation test: is every catalog fault caught?
//	moecheck triage     first failing stage, location and the most similar known fault class
//	moecheck nightly    corpus + model presets + random budget, JSON Lines results, resume, JUnit
//	moecheck report     Markdown/HTML report with heatmaps from a nightly results file
//	moecheck ref        build a case, run the float64 reference, print a summary
//	moecheck presets    list the model presets
//
// Exit codes: 0 pass, 1 failures found, 2 usage, 3 internal or device error (or an
// interrupted run). See docs/cli.md.
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
)

func main() {
	mem := memTotal()
	setMemoryLimit(mem)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Execute(ctx, os.Args[1:], Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Memory: mem})
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
