#!/usr/bin/env bash
# Measures, for each fault of the catalog, how long `go test -fuzz FuzzPath` takes to find it
# (MOECHECK_FAULTS=<fault>), up to a limit per fault, in two modes:
#   seeded:  the normal run (corpus/seeds, corpus/regressions and testdata as seeds);
#   scratch: no seeds but the empty input (MOECHECK_FUZZ_SEEDS=none, run outside the package
#            directory so testdata/ is not read either): the fuzzer's own search.
# Prints a Markdown table row per fault: fault | seeded s | scratch s (">limit" if not found).
#
#   scripts/fuzz-time-to-find.sh [limit, default 60s] [backend, default sim]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
limit=${1:-60s}
export MOECHECK_BACKEND=${2:-sim}
bin=$(mktemp -d)/fuzz.test
go test -c -fuzz FuzzPath -o "$bin" ./fuzz >/dev/null || exit 3
faults=$(go run ./cmd/moecheck mutants --help 2>/dev/null | sed -n '/^The catalog:/,/^$/p' | awk 'NR>1 && NF {print $1}')
[ -n "$faults" ] || { echo "no faults listed by moecheck mutants --help" >&2; exit 3; }
# one run: prints seconds to the failure, or ">limit"
run() { # dir fault [env...]
  local dir=$1 f=$2; shift 2
  local cache t0 t1 rc
  cache=$(mktemp -d)
  t0=$(date +%s%N)
  (cd "$dir" && env "$@" MOECHECK_FAULTS="$f" "$bin" -test.run '^$' -test.fuzz '^FuzzPath$' \
    -test.fuzztime "$limit" -test.fuzzcachedir "$cache" >"$cache.log" 2>&1)
  rc=$?
  t1=$(date +%s%N)
  rm -rf "$cache"
  if [ $rc -eq 0 ]; then echo ">$limit"; else awk -v d=$((t1 - t0)) 'BEGIN {printf "%.1f", d / 1e9}'; fi
  rm -f "$cache.log"
}
scratch=$(mktemp -d)
echo "| fault | seeded (s) | from scratch (s) |"
echo "|---|---:|---:|"
for f in $faults; do
  a=$(run "$root/fuzz" "$f")
  b=$(run "$scratch" "$f" MOECHECK_FUZZ_SEEDS=none)
  echo "| $f | $a | $b |"
  # leave no new crasher files behind
  git -C "$root" clean -qfd fuzz/testdata/fuzz/FuzzPath >/dev/null 2>&1 || true
  rm -rf "$scratch/testdata"
done
