#!/usr/bin/env bash
# equality-outputs.sh BIN OUTDIR: runs moecheck binary BIN over the outputs a speed change must
# leave byte-identical (verdicts, failure lists with got/want/bound, radius statistics,
# mutation results) and writes each to OUTDIR/NAME.txt with timings and rates stripped;
# compare two binaries with `diff -r OUT_A OUT_B`. Every run uses --jobs 1 (with more jobs,
# nondeterministic-sum's shrunk case depends on which job ran what). About 3 minutes on two
# idle cores. Used for the per-core rounds of issue 14 (README, Figures).
set -uo pipefail
bin=$(realpath "$1")
out=$2
mkdir -p "$out"
# strip: squeeze spaces, drop progress lines, replace durations and rates.
strip() {
  sed -E -e 's/ +/ /g' -e '/cases, [0-9]+ failing, /d' \
    -e 's/[0-9]+(\.[0-9]+)?(ns|µs|us|ms|s|m|h)\b/T/g' -e 's/(T|T[0-9]*T)\s+[0-9.]+\s*$/\1 R/' \
    -e 's/[0-9.]+ cases\/s/R cases\/s/g' -e 's/[0-9.]+ ?(cases\/cpu-s|execs\/s)/R/g'
}
# one NAME ARGS...: runs BIN ARGS, its exit status appended.
one() {
  local name=$1
  shift
  { "$bin" "$@" 2>&1; echo "rc=$?"; } | strip >"$out/$name.txt"
}
one check600 check --cases 600 --seed 3 --keep-going --jobs 1
one torch300 check --cases 300 --seed 11 --contract torch --backend sim-torch --keep-going --jobs 1
one simtorch3 check --backend sim-torch --cases 300 --seed 3 --jobs 1
one sharp check --cases 300 --seed 3 --sharpness --jobs 1
one mutants mutants --jobs 1
for f in clamp-sentinel mask-after-weight no-mask-up-dgrad no-mask-down-dgrad empty-expert-wgrad \
  histogram-sentinel exclusive-offsets sentinel-wrap combine-in-dtype accum-in-dtype gate-up-swapped \
  ep-no-rank-offset last-tile-dropped tail-stale-unmasked nondeterministic-sum neighbour-weights \
  zero-token-row stale-empty-wgrad; do
  one "f-$f" check --cases 60 --seed 2 --keep-going --no-shrink --jobs 1 --faults "$f"
done
for c in exact torch any; do
  one "ep-$c" check --cases 200 --seed 5 --properties ep-split-sum --contract "$c" --keep-going --no-shrink --jobs 1
  one "ep-$c-f" check --cases 200 --seed 5 --properties ep-split-sum --contract "$c" --keep-going --no-shrink --jobs 1 \
    --faults ep-no-rank-offset,combine-in-dtype,accum-in-dtype,empty-expert-wgrad,neighbour-weights
done
