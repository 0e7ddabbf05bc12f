#!/usr/bin/env bash
# Runs each native fuzz target of ./fuzz for FUZZTIME (default 60s). A target fails on a real
# finding (a failing input written, a panic, a test error). Go 1.26's fuzz coordinator can
# also end a duration-bounded run with a bare "context deadline exceeded" at the -fuzztime
# boundary when its workers are starved (golang/go#75804, fixed in Go 1.27): no input is
# written and nothing reproduces. Such a run, and only such a run, is retried (at most twice: it
# hit FuzzDecodeCase in two of four CI runs here, whose execs slow down on large cases); a third
# failure of any kind fails the script.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# deadline_flake LOG: the run ended only with the coordinator's deadline error.
deadline_flake() {
  grep -q 'context deadline exceeded' "$1" &&
    ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$1"
}
for t in $($GO test -list 'Fuzz.*' ./fuzz | grep ^Fuzz); do
  for try in 1 2 3; do
    echo "== $t ($FUZZTIME)"
    $GO test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" ./fuzz 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] && break
    if [ "$try" -lt 3 ] && deadline_flake "$log"; then
      echo "== $t: the fuzz engine's -fuzztime deadline race (golang/go#75804), no input written: retrying"
      continue
    fi
    exit 1
  done
done
