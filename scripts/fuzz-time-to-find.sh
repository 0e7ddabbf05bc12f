#!/usr/bin/env bash
# Measures, for each fault of the catalog, how long `go test -fuzz FuzzPath` takes to find it
# (MOECHECK_FAULTS=<fault>), up to a limit per fault. Prints a Markdown table row per fault:
# fault | found | seconds | how (seed corpus entry, or a fuzzer-generated input).
#
#   scripts/fuzz-time-to-find.sh [limit, default 60s] [backend, default sim]
set -uo pipefail
cd "$(dirname "$0")/.."
limit=${1:-60s}
export MOECHECK_BACKEND=${2:-sim}
go test -c -o /tmp/fuzz.test ./fuzz >/dev/null || exit 3
faults=$(go run ./cmd/moecheck mutants --help 2>/dev/null | grep -oE '^\s+[a-z][a-z0-9-]+ ' | tr -d ' ' || true)
if [ -z "$faults" ]; then
  faults="clamp-sentinel mask-after-weight no-mask-up-dgrad no-mask-down-dgrad empty-expert-wgrad histogram-sentinel exclusive-offsets sentinel-wrap combine-in-dtype accum-in-dtype gate-up-swapped ep-no-rank-offset last-tile-dropped tail-stale-unmasked nondeterministic-sum neighbour-weights zero-token-row crash"
fi
echo "| fault | found | seconds | by |"
echo "|---|---|---|---|"
for f in $faults; do
  cache=$(mktemp -d)
  t0=$(date +%s.%N)
  log=$( (cd fuzz && MOECHECK_FAULTS=$f /tmp/fuzz.test -test.run '^$' -test.fuzz '^FuzzPath$' -test.fuzztime "$limit" \
    -test.fuzzcachedir "$cache" 2>&1) )
  rc=$?
  t1=$(date +%s.%N)
  rm -rf "$cache"
  secs=$(echo "$t1 - $t0" | bc)
  # leave no new crasher files behind in the package's testdata
  git -C . clean -qfd fuzz/testdata/fuzz/FuzzPath >/dev/null 2>&1 || true
  if [ $rc -eq 0 ]; then
    echo "| $f | no | >$limit | |"
  elif echo "$log" | grep -q "seed#\|seed corpus"; then
    printf '| %s | yes | %.1f | seed corpus entry |\n' "$f" "$secs"
  else
    printf '| %s | yes | %.1f | fuzzer input |\n' "$f" "$secs"
  fi
done
