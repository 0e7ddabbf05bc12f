#!/usr/bin/env bash
# The acceptance runs of this round's issues on the GPU machine, in one device call (no Go
# there: build first with `make device-suite device-torch`, carry .device). Logs under $OUT:
# summary.txt (printed last) and logs.tgz.
#
#   scripts/device-acceptance.sh
#
# Phase 1, the GPU to itself (throughput, ratio measured in one run):
#   cuda-j1, cuda-jN   moecheck check --backend cuda, every property, --jobs 1 then --jobs N
# Phase 2, side by side:
#   torch-grouped_mm   5,000 random cases of transformers:grouped_mm, every property, judged
#                      under the contract the worker declares (torch); poison-invariance runs
#                      every case under every policy the worker honours (NaN included)
#   torch-batched_mm   transformers:batched_mm (a known upstream bug: docs/python.md Findings)
#   ledger             #45621-as-merged and clamp-sentinels under the default budget, triage
#   mutants            moecheck mutants --backend cuda (exact) and --contract torch
#   selftest           moecheck-worker -selftest (the GPU judged by the oracle against gpu/sim)
#   preset             Qwen3-30B-A3B EP-8 rank at 16,384 tokens on the CUDA path (matches)
#   simtorch           sim-torch under torch on the cores left (no-false-alarm run)
set -uo pipefail
cd "$(dirname "$0")/.."
FINAL=${OUT:-device-out}
L=$(mktemp -d)/logs
mkdir -p "$L" "$FINAL"
export PATH=$PWD/.device:$PATH
M=$PWD/.device/moecheck
W=$PWD/.device/moecheck-worker
export MOECHECK_PYTHON=${MOECHECK_PYTHON:-python3}
export PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
JOBS=${JOBS:-16}
CB=${CUDA_BACKEND:-cuda} # the CUDA path (sim: a smoke run of this script without a GPU)
S=$L/summary.txt
: >"$S"
note() { echo "$*" | tee -a "$S"; }
# shellcheck source=scripts/timed.sh
. scripts/timed.sh # (the working directory is the repository root)
note "gpu: $(nvidia-smi -L 2>&1 | head -1); cpus: $(nproc)"
note "python: $($MOECHECK_PYTHON -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1 | tail -1)"

# Phase 1: CUDA path throughput, --jobs 1 vs --jobs N, same seed.
timed cuda-j1 60 "$M" check --backend "$CB" --jobs 1 --time 30s --seed 3 --keep-going --max-shrinks 40
timed cuda-jN 100 "$M" check --backend "$CB" --jobs "$JOBS" --time 60s --seed 3 --keep-going --max-shrinks 40

# Phase 2.
timed torch-grouped_mm 300 "$M" check --backend torch:transformers:grouped_mm --jobs 6 --cases 5000 --seed 1 --keep-going --max-shrinks 40 &
timed torch-batched_mm 150 "$M" check --backend torch:transformers:batched_mm --jobs 2 --time 120s --seed 2 --keep-going --no-shrink &
(
  timed ledger-merged 60 "$M" check --backend torch:ledger:45621-as-merged --seed 1
  spec=$(sed -n 's/^  shrunk: \(.*\) ([0-9]* steps.*/\1/p' "$L/ledger-merged.txt" | head -1)
  [ -n "$spec" ] && timed triage-merged 60 "$M" triage --backend torch:ledger:45621-as-merged --spec "$spec" --no-save --no-shrink
  timed ledger-clamp 60 "$M" check --backend torch:ledger:clamp-sentinels --seed 1
  timed selftest 200 "$W" -selftest
) &
(
  timed mutants-exact 200 "$M" mutants --backend "$CB" --jobs 2
  timed mutants-torch 200 "$M" mutants --backend "$CB" --jobs 2 --contract torch
) &
timed preset 280 "$M" check --backend "$CB" --preset qwen3-30b-a3b/ep8/rank3/T16384/seed1 --properties matches &
timed simtorch 270 "$M" check --backend sim-torch --jobs 3 --time 240s --seed 21 --properties matches --keep-going &
wait

for f in "$L"/*.txt; do
  [ "$f" = "$S" ] && continue
  note "== $(basename "$f")"
  grep -E '^[0-9]+ +[0-9]+ |^[a-z-]+ +[0-9]+ +[0-9]+|cases/s|^PASS|^FAIL|caught|shrunk:|first|unsupported|contract|^rc=' "$f" | grep -v '^  |' | head -24 | cut -c1-300 | tee -a "$S" >/dev/null
  grep -E '^  [a-z-]+ [a-zA-Z0-9_]+: [0-9]+ element' "$f" | sed 's/ got .*//; s/worst .*//' | sort | uniq -c | sort -rn | head -6 | tee -a "$S" >/dev/null
done
cp "$S" "$FINAL/summary.txt"
tar czf "$FINAL/logs.tgz" -C "$(dirname "$L")" logs
cat "$S"
