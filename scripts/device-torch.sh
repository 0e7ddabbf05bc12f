#!/usr/bin/env bash
# PyTorch targets on the GPU machine in one device call (no Go there: build the CLI first,
# `make device-torch`, and carry .device). Logs under $OUT; a summary is printed last.
#
#   scripts/device-torch.sh [SECONDS]     # SECONDS: budget of each random run (default 60)
#
# Steps, several in parallel (each CLI run starts its own worker and CUDA context):
#   preflight   python3 -m moecheck.preflight (allocator and fill-uninitialized methods)
#   bench       python3 -m moecheck.bench --target transformers:grouped_mm (per-case time split)
#   ledger      the ledger entries under the default budget (100 cases), then triage of the
#               shrunk case (op-level: first non-finite op and its source line)
#   targets     transformers:{grouped_mm,batched_mm,eager} × {fp32, bf16}: random runs, every
#               property, --keep-going (every failing case is listed)
#
# The long acceptance runs (5,000 cases per target) are the same commands with --cases 5000:
#   .device/moecheck check --backend torch:transformers:grouped_mm --cases 5000 --keep-going --seed 1
set -uo pipefail
cd "$(dirname "$0")/.."
FINAL=${OUT:-device-out}
OUT=$(mktemp -d)/logs  # many logs: $FINAL gets summary.txt and logs.tgz (the device returns few files)
mkdir -p "$OUT" "$FINAL"
T=${1:-60}
MC=.device/moecheck
export MOECHECK_PYTHON=${MOECHECK_PYTHON:-python3}
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
export MOECHECK_CACHE=$OUT/cache
S=$OUT/summary.txt
: >"$S"
note() { echo "$*" | tee -a "$S"; }
note "gpu: $(nvidia-smi -L 2>&1 | head -1)"
note "python: $($MOECHECK_PYTHON -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1 | tail -1)"

( t0=$(date +%s.%N); $MOECHECK_PYTHON -m moecheck.preflight >"$OUT/preflight.txt" 2>&1; echo "rc=$? $(python3 -c "import sys,time; print(round(time.time()-float(sys.argv[1]),2))" $t0)s" >>"$OUT/preflight.txt" ) &
( $MOECHECK_PYTHON -m moecheck.bench --target transformers:grouped_mm --reps 200 >"$OUT/bench.txt" 2>&1
  $MOECHECK_PYTHON -m moecheck.bench --target transformers:batched_mm --reps 100 >>"$OUT/bench.txt" 2>&1 ) &
# Ledger: fp32 (the exact contract's rounding freedoms fit torch's fp32 paths; bf16 needs the
# torch contract, see docs/python.md), then bf16 for the record.
for e in 45621-as-merged clamp-sentinels fixed; do
  ( t0=$(date +%s.%N)
    $MC check --backend torch:ledger:$e --seed 1 --dtype fp32 >"$OUT/ledger-$e.txt" 2>&1; rc=$?
    echo "rc=$rc wall=$(python3 -c "import sys,time; print(round(time.time()-float(sys.argv[1]),2))" $t0)s" >>"$OUT/ledger-$e.txt"
    spec=$(sed -n 's/^  shrunk: \(.*\) ([0-9]* steps.*/\1/p' "$OUT/ledger-$e.txt" | head -1)
    if [ -n "$spec" ]; then
      $MC triage --backend torch:ledger:$e --spec "$spec" --no-save --no-shrink >"$OUT/triage-$e.txt" 2>&1
      echo "rc=$?" >>"$OUT/triage-$e.txt"
    fi
    $MC check --backend torch:ledger:$e --seed 1 --dtype bf16 --no-shrink >"$OUT/ledger-$e-bf16.txt" 2>&1
    echo "rc=$?" >>"$OUT/ledger-$e-bf16.txt" ) &
done
wait
for impl in grouped_mm batched_mm eager; do
  for d in fp32 bf16; do
    shrink="--max-shrinks 40"; [ $d = bf16 ] && shrink=--no-shrink
    ( $MC check --backend torch:transformers:$impl --dtype $d --time ${T}s --cases 5000 --keep-going $shrink --seed 1 \
        >"$OUT/check-$impl-$d.txt" 2>&1; echo "rc=$?" >>"$OUT/check-$impl-$d.txt" ) &
  done
done
wait
for f in "$OUT"/preflight.txt; do note "== $f: $(grep -c FAIL "$f") FAIL cells; $(tail -1 "$f")"; done
for f in "$OUT"/ledger-*.txt; do note "== $f"; grep -E '^[0-9]+ +[0-9]+ |shrunk:|^  [a-z-]+ .*got|^rc=' "$f" | head -5 | cut -c1-400 | tee -a "$S"; done
for f in "$OUT"/triage-*.txt; do note "== $f"; grep -E 'triage:|first|rc=' "$f" | grep -v '^  |' | head -8 | cut -c1-400 | tee -a "$S"; done
for f in "$OUT"/check-*.txt; do note "== $f"; grep -E '^[0-9]+ +[0-9]+ |^unsupported|^[a-z-]+ +[0-9]+ +[0-9]+$|^rc=' "$f" | head -12 | tee -a "$S";
  grep -E '^  [a-z-]+ [a-zA-Z0-9]+: [0-9]+ element' "$f" | sed 's/ got .*//' | sort | uniq -c | sort -rn | head -6 | tee -a "$S"; done
note "== bench"; cat "$OUT/bench.txt" | tee -a "$S"
cp "$S" "$FINAL/summary.txt"
tar czf "$FINAL/logs.tgz" -C "$(dirname "$OUT")" --exclude logs/cache logs
