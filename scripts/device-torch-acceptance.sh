#!/usr/bin/env bash
# Issue 13's acceptance runs of the PyTorch targets on the GPU machine, in one device call of
# under 9 minutes (no Go there: build first with `make device-torch`, carry .device). Logs
# under $OUT: summary.txt (printed last), first-failure-*.txt, logs.tgz.
#
#   scripts/device-torch-acceptance.sh [STEP ...]
# (START_AT=N: the 5,000-case runs start at case N and run 5,000 − N cases, to finish a run
# that an earlier call cut short)
#
# Steps (default: all, in this order; the 5,000-case runs share whatever time is left):
#   bench       python3 -m moecheck.bench: per-run split (decode, setup, forward, backward,
#               poison, collect, encode) of transformers:grouped_mm, cached shape and a fresh
#               shape every run (module build); the in-process rate of 1, 2, 4, 8 lanes
#               (bench --lanes); and tests.batched_wgrad_probe (how CUDA's
#               index_put_ sums batched_mm's per-slot weight gradients)
#   unittests   the Python package's tests on the GPU machine (CUDA-only ones included:
#               tests.test_transfer's pinned one-copy transfers)
#   throughput  start-up first: the wall time of `check --cases 1` with --jobs 1 and with
#               --jobs 8 (time to the first case, worker start-up included); then
#               transformers:grouped_mm, every property, per configuration JOBS:LANES of
#               THRU_CONFIGS (default "1:1 2:1 4:4 8:4 8:8 16:4": --jobs JOBS
#               --lanes-per-worker LANES, so 8:4 is 2 worker processes of 4 lanes), THRU_S
#               seconds each (default 20), the GPU to itself: cases/s from the CLI's own
#               summary and its steady rate, and the host's busy cores; each configuration
#               once per host-wait mode of THRU_SYNC (default "blocking"; "blocking spin"
#               compares: the worker's --sync through MOECHECK_WORKER_SYNC)
#   ledger      #45621-as-merged under the default budget: caught in < 2 s (the CLI's case
#               time), shrunk to T ≤ 2 and E ≤ 2, triage names the op (the worker's triage)
#   grouped     transformers:grouped_mm, --cases 5000 --keep-going, every property
#   batched     transformers:batched_mm --no-sentinels (5,000 cases), and the full target for
#               FULL_S seconds (default 60), counting the #48687 failures (sentinel-drw)
#   eager       transformers:eager --no-sentinels (5,000 cases; with sentinels every case is
#               a device-side assert, #48610), PyTorch's default cuBLAS switches: the hello
#               declares torch+reduced-precision-reduction (docs/oracle.md §9.6)
#   eager32     the same with --fp32-gemm-reductions (the switches off: plain torch)
#   short       SHORT_CASES (500) cases of grouped_mm, batched_mm --no-sentinels and eager
#               --no-sentinels side by side, every property (history included), before the
#               5,000-case runs
# The 5,000-case runs (grouped, batched, eager and the short full batched run) run side by side,
# each with --jobs JOBS (default 2) and the same wall budget: the time left before TOTAL_S
# (default 510 s after the start) minus the summary's margin; a run that does not reach 5,000
# cases in it says how many it ran (the CLI's summary). Every property runs; poison-invariance
# runs every case under every policy the worker honours (NaN, ±Inf, huge, stale, signature,
# zeros), and each case's single runs use its drawn policy. No step runs past TOTAL_S + 30 s
# (a step's limit is cut to what is left; one with under 5 s left is skipped and says so), so
# with the default TOTAL_S the script ends within 9 minutes even if every step hangs.
#
# Environment: MOECHECK_PYTHON (python3), JOBS, THRU_S, THRU_CONFIGS, THRU_SYNC, TTFC_JOBS (the
# --jobs values of the start-up measurement, default "1 8"; empty skips it), FULL_S, TOTAL_S, SEED (1), MC (the CLI,
# .device/moecheck). TARGET_MAP replaces the transformers targets, for a smoke run of the
# script's logic on a machine without a GPU or transformers, e.g. (about 80 s on 2 cores):
#   go build -o .device/moecheck ./cmd/moecheck && OUT=/tmp/o MOECHECK_PYTHON=/usr/bin/python3 \
#   THRU_S=12 TOTAL_S=150 FULL_S=10 JOBS=1 TARGET_MAP="grouped_mm=ledger:fixed \
#   batched_mm=callable:moecheck.testing:fixed_rejects_sentinels eager=callable:moecheck.testing:fixed_rejects_sentinels" \
#   scripts/device-torch-acceptance.sh
# (on the CPU the ledger acceptance line says FAIL: torch 1.13's CPU bf16 GEMMs leave the torch
# contract's bounds, so the first failure found there is a bf16 bound, not the leak.)
set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
FINAL=${OUT:-device-out}
L=$(mktemp -d)/logs
mkdir -p "$L" "$FINAL"
MC=${MC:-$PWD/.device/moecheck}
export MOECHECK_PYTHON=${MOECHECK_PYTHON:-python3}
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
export MOECHECK_CACHE=${MOECHECK_CACHE:-$L/cache}
JOBS=${JOBS:-2}
THRU_S=${THRU_S:-20}
THRU_CONFIGS=${THRU_CONFIGS:-1:1 2:1 4:4 8:4 8:8 16:4}
THRU_SYNC=${THRU_SYNC:-blocking}
FULL_S=${FULL_S:-60}
TOTAL_S=${TOTAL_S:-510}
SEED=${SEED:-1}
STEPS=${*:-bench throughput ledger grouped batched eager}
S=$L/summary.txt
# host CPU use between two /proc/stat samples: busy cores of all (user+nice+system+irq+softirq)
cpustat() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
cpubusy() { echo "$1 $2" | awk -v n="$(nproc)" '{b=$3-$1; t=$4-$2; if (t>0) printf "%.1f of %d cores busy", n*b/t, n}'; }
: >"$S"
note() { echo "$*" >>"$S"; } # the summary, printed at the end
say() { echo "$(date -u +%T) $*"; }   # progress
has() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
# tgt IMPL: the target name of a transformers implementation (TARGET_MAP overrides it for a
# smoke run of this script: "grouped_mm=callable:mod:fn batched_mm=... eager=...").
tgt() {
  local m
  for m in ${TARGET_MAP:-}; do
    [ "${m%%=*}" = "$1" ] && { echo "${m#*=}"; return; }
  done
  echo "transformers:$1"
}
left() { echo $((TOTAL_S - ($(date +%s) - START))); }
# shellcheck source=scripts/timed.sh
. scripts/timed.sh # (the working directory is the repository root)
# timed NAME LIMIT CMD...: timed.sh's runner, output in $L/NAME.txt, then a line "rc=N wall=Xs
# maxrss_kb=K user=Us sys=Ss" (rc=timeout when the limit killed it). Never aborts the script. No step runs
# past TOTAL_S + 30 s: its limit is cut to what is left (a step with less than 5 s left is
# skipped and says so), so the script ends in time even when every step hangs.
timed() {
  local name=$1 lim=$2 rem
  shift 2
  rem=$(( $(left) + 30 ))
  if [ $rem -lt 5 ]; then
    echo "skipped: no time left before TOTAL_S=$TOTAL_S" >"$L/$name.txt"
    echo "rc=skipped wall=0.0s" >>"$L/$name.txt"
    return
  fi
  [ $lim -gt $rem ] && lim=$rem
  run_limited "$name" "$lim" "$@"
}
# summary NAME: the CLI's summary of a check log (cases, failures, cases/s, unsupported,
# property table, rc) and the first failure saved as first-failure-NAME.txt.
summary() {
  local f=$L/$1.txt
  [ -f "$f" ] || { note "== $1: not run"; return; }
  note "== $1"
  grep -E '^moecheck check:|^[0-9]+ +[0-9]+ +[0-9][0-9a-zµ.]*s|^unsupported|^[a-z0-9-]+( +[0-9]+){2,3}$|^property +ran|^(PASS|FAIL)$|^rc=|^cannot start|^moecheck: ' "$f" |
    cut -c1-220 >>"$S"
  grep -E '^  -? ?[a-z-]+ [a-zA-Z0-9_]+: [0-9]+ element' "$f" | sed 's/^  - /  /; s/: [0-9]* element.*//' | sort | uniq -c | sort -rn | head -8 |
    sed 's/^/  checks failing (cases): /' >>"$S"
  awk '/^FAIL case /{p=1} p&&/^$/{exit} p' "$f" | cut -c1-400 >"$L/first-failure-$1.txt"
  if [ -s "$L/first-failure-$1.txt" ]; then
    cp "$L/first-failure-$1.txt" "$FINAL/"
    note "  first failure: $(head -1 "$L/first-failure-$1.txt") ($(sed -n 's/^  spec: *//p' "$L/first-failure-$1.txt" | head -1 | cut -c1-160))"
  fi
}
# cps NAME: cases and cases/s from the CLI's summary line.
# The CLI's --time counts from its start, worker start-up included; the steady rate is taken
# from its progress lines ("  N cases, F failing, Ts, R cases/s", every 5 s): first to last.
cps() {
  grep -E '^[0-9]+ +[0-9]+ +[0-9][0-9a-zµ.]*s' "$L/$1.txt" 2>/dev/null | head -1 | awk '{printf "%s cases, %s failing, %s cases/s (%s)", $1, $2, $4, $3}'
  grep -E '^  [0-9]+ cases, [0-9]+ failing, [0-9]+s, ' "$L/$1.txt" 2>/dev/null | awk '{c[NR]=$1; t[NR]=$5+0} END{if(NR>=2 && t[NR]>t[1]) printf "; steady %.1f cases/s (%ss to %ss)", (c[NR]-c[1])/(t[NR]-t[1]), t[1], t[NR]}'
}

note "gpu: $(nvidia-smi -L 2>&1 | head -1); cpus: $(nproc); steps: $STEPS"
note "python: $($MOECHECK_PYTHON -c 'import torch; import importlib.util as u; print("torch", torch.__version__, "transformers", __import__("transformers").__version__ if u.find_spec("transformers") else "absent")' 2>&1 | tail -1)"
[ -x "$MC" ] || note "missing $MC: build it with make device-torch and carry .device"

G=$(tgt grouped_mm)
B=$(tgt batched_mm)
E=$(tgt eager)

if has bench; then
  say bench
  timed bench 60 $MOECHECK_PYTHON -m moecheck.bench --target "$G" --reps 200 --count-syncs
  timed bench-spin 60 $MOECHECK_PYTHON -m moecheck.bench --target "$G" --reps 200 --sync spin
  timed bench-fresh 60 $MOECHECK_PYTHON -m moecheck.bench --target "$G" --reps 40 --fresh-shapes
  timed bench-gptoss 60 $MOECHECK_PYTHON -m moecheck.bench --target "$G" --reps 100 --act gptoss
  # in-process lanes: how far one worker's threads (a stream each) scale under the GIL
  timed bench-lanes 90 $MOECHECK_PYTHON -m moecheck.bench --target "$G" --reps 100 --lanes 1,2,4,8
  # which per-slot weight-gradient sum CUDA's index_put_ makes (the torch contract's WGradSlots)
  timed wgrad-probe 60 sh -c "cd python && exec $MOECHECK_PYTHON -m tests.batched_wgrad_probe"
fi

if has unittests; then
  say unittests
  timed unittests 240 sh -c "cd python && exec $MOECHECK_PYTHON -m unittest discover -s tests -t ."
fi

if has throughput; then
  for j in ${TTFC_JOBS-1 8}; do # time to the first case: worker start-up (import, CUDA, probe) + one case
    say "start-up --jobs $j"
    timed ttfc-j$j 90 "$MC" check --backend "torch:$G" --jobs $j --cases 1 --seed $SEED --keep-going --no-shrink
  done
  for c in $THRU_CONFIGS; do
    j=${c%%:*} l=${c#*:}
    for sm in $THRU_SYNC; do
      say "throughput --jobs $j --lanes-per-worker $l, host waits $sm"
      c0=$(cpustat)
      MOECHECK_WORKER_SYNC=$sm timed thru-j$j-l$l-$sm $((THRU_S + 60)) "$MC" check --backend "torch:$G" --jobs $j --lanes-per-worker $l --time ${THRU_S}s --seed $SEED --keep-going --no-shrink
      echo "host CPU: $(cpubusy "$c0" "$(cpustat)")" >>"$L/thru-j$j-l$l-$sm.txt"
    done
  done
fi

if has ledger; then
  say ledger
  # the default run (every dtype the worker supports) is the acceptance line; fp32 alone is
  # shown beside it (no 16-bit rounding question can come first there)
  for v in "" fp32; do
    n=ledger-merged${v:+-$v}
    timed $n 90 "$MC" check --backend torch:ledger:45621-as-merged --seed $SEED ${v:+--dtype $v}
    # time to the catch: one job, no shrink (with the default jobs the summary's time also
    # holds the shrink, 7 s on the H200, against 95 ms for the catch itself)
    timed $n-catch 60 "$MC" check --backend torch:ledger:45621-as-merged --seed $SEED ${v:+--dtype $v} --jobs 1 --no-shrink
    spec=$(sed -n 's/^  shrunk: \(.*\) ([0-9]* steps.*/\1/p' "$L/$n.txt" | head -1)
    if [ -n "$spec" ]; then
      timed $n-triage 90 "$MC" triage --backend torch:ledger:45621-as-merged --spec "$spec" --no-save --no-shrink
    fi
  done
fi

if has short; then
  say "short runs: ${SHORT_CASES:-500} cases each"
  for t in "grouped:torch:$G" "batched:torch:$B --no-sentinels" "eager:torch:$E --no-sentinels"; do
    timed "short-${t%%:*}" 240 "$MC" check --backend "${t#*:}" --jobs $JOBS --cases ${SHORT_CASES:-500} --seed $((SEED + 2)) --keep-going --max-shrinks 20 &
  done
  wait
fi

# The long runs, side by side, sharing the time that is left.
B5=$(( $(left) - 45 ))
[ $B5 -gt 600 ] && B5=600
if [ $B5 -lt 30 ]; then
  note "no time left for the 5,000-case runs ($(left) s before TOTAL_S=$TOTAL_S)"
else
  # lanes (BIGLANES per worker process, default 4) unless the throughput step's lanes run
  # (--jobs 8 --lanes-per-worker 4) did not pass, then a process per job
  BIGLANES=${BIGLANES:-4}
  if has throughput && [ -f "$L/thru-j8-l4.txt" ] && ! grep -q '^PASS$' "$L/thru-j8-l4.txt"; then
    BIGLANES=1
  fi
  note "5,000-case runs: --time ${B5}s each, --jobs $JOBS --lanes-per-worker $BIGLANES"
  say "5,000-case runs: --time ${B5}s each"
  big() { # NAME BACKEND [extra flags]
    local name=$1 be=$2
    shift 2
    timed "$name" $((B5 + 40)) "$MC" check --backend "$be" --jobs $JOBS --lanes-per-worker $BIGLANES --start ${START_AT:-0} --cases $((5000 - ${START_AT:-0})) --time ${B5}s --seed $SEED --keep-going --max-shrinks 20 "$@" &
  }
  has grouped && big grouped "torch:$G"
  if has batched; then
    big batched-nosentinels "torch:$B --no-sentinels"
    F=$FULL_S
    [ $F -gt $B5 ] && F=$B5
    timed batched-full $((F + 40)) "$MC" check --backend "torch:$B" --jobs 1 --time ${F}s --seed $((SEED + 1)) --keep-going --no-shrink &
  fi
  has eager && big eager-nosentinels "torch:$E --no-sentinels"
  has eager32 && big eager32-nosentinels "torch:$E --no-sentinels --fp32-gemm-reductions"
  wait
fi

# Summary.
if has bench; then
  for b in bench bench-spin bench-fresh bench-gptoss bench-lanes wgrad-probe; do note "== $b"; grep -vE '^$' "$L/$b.txt" | tail -12 | cut -c1-200 >>"$S"; done
fi
has unittests && note "unittests: $(grep -E '^(Ran|OK|FAILED)' "$L/unittests.txt" | tr '\n' ' ')"
if has throughput; then
  for j in ${TTFC_JOBS-1 8}; do note "start-up --jobs $j --cases 1: $(tail -1 "$L/ttfc-j$j.txt")"; done
  for c in $THRU_CONFIGS; do
    j=${c%%:*} l=${c#*:}
    for sm in $THRU_SYNC; do
      note "throughput --jobs $j --lanes-per-worker $l, host waits $sm: $(cps thru-j$j-l$l-$sm) $(tail -2 "$L/thru-j$j-l$l-$sm.txt" | tr '\n' ' ')"
    done
  done
fi
if has ledger; then
  for n in ledger-merged ledger-merged-fp32; do
    summary $n
    f=$L/$n.txt
    t=$(grep -E '^[0-9]+ +[0-9]+ +[0-9][0-9a-zµ.]*s' "$L/$n-catch.txt" 2>/dev/null | head -1 | awk '{print $3}')
    sh=$(sed -n 's/^  shrunk: \(.*\) ([0-9]* steps.*/\1/p' "$f" 2>/dev/null | head -1)
    T=$(echo "$sh" | sed -n 's/^T=\([0-9]*\) .*/\1/p')
    Ex=$(echo "$sh" | sed -n 's/.* E=\([0-9]*\) .*/\1/p')
    ok=FAIL
    leak=no
    grep -qE '^  -? ?(sentinel-drw|nonfinite) drw: ' "$L/first-failure-$n.txt" 2>/dev/null && leak=yes
    op=no
    grep -qE 'first backward op with a non-finite output.*mul' "$L/$n-triage.txt" 2>/dev/null && op=yes
    [ $leak = yes ] && [ $op = yes ] && python3 -c "
import re, sys
t = sys.argv[1]
m = re.fullmatch(r'([0-9.]+)(ns|µs|us|ms|s|m)', t)
sec = float(m.group(1)) * {'ns': 1e-9, 'µs': 1e-6, 'us': 1e-6, 'ms': 1e-3, 's': 1, 'm': 60}[m.group(2)] if m else 1e9
sys.exit(0 if sec < 2 and sys.argv[2] and int(sys.argv[2]) <= 2 and int(sys.argv[3] or 99) <= 2 else 1)" "${t:-none}" "${T:-}" "${Ex:-}" 2>/dev/null && ok=ok
    note "$n: caught in ${t:-?} (one job, no shrink), shrunk to T=${T:-?} E=${Ex:-?}, the leak (drw of a sentinel slot) named: $leak, worker triage names a backward mul: $op: acceptance $ok"
    if [ -f "$L/$n-triage.txt" ]; then
      note "  $(grep -E 'first stage' "$L/$n-triage.txt" | head -1 | cut -c1-200)"
      grep -E 'first (forward|backward) op|first op turning' "$L/$n-triage.txt" | head -3 | cut -c1-240 | sed 's/^ */  worker triage: /' >>"$S"
      note "  triage $(tail -1 "$L/$n-triage.txt")"
    fi
  done
fi
for n in short-grouped short-batched short-eager grouped batched-nosentinels batched-full eager-nosentinels eager32-nosentinels; do
  [ -f "$L/$n.txt" ] && { summary $n; note "  $n: $(cps $n)"; }
done
if [ -f "$L/batched-full.txt" ]; then
  # per failing case: does any of its failed checks say sentinel-drw (the #48687 leak)?
  awk '/^FAIL case /{if(n)print k" "p; n=1; k=0; p=$5} n&&/^  -? ?sentinel-drw /{k=1} END{if(n)print k" "p}' "$L/batched-full.txt" >"$L/batched-full.cases"
  all=$(wc -l <"$L/batched-full.cases")
  drw=$(grep -c '^1 ' "$L/batched-full.cases")
  note "batched_mm full target: $all failing case(s) listed, $drw with sentinel-drw (#48687); the others by property: $(grep '^0 ' "$L/batched-full.cases" | awk '{print $2}' | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
fi
note "wall: $(( $(date +%s) - START )) s"
cp "$S" "$FINAL/summary.txt"
tar czf "$FINAL/logs.tgz" -C "$(dirname "$L")" --exclude logs/cache logs
cat "$S"
