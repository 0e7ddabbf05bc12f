#!/usr/bin/env bash
# Runs the GPU checks on the device machine in one call (it has no Go: build first with
# `make device` and carry .device). Writes logs under $OUT (default ./device-out) and prints
# a short table last.
#
#   scripts/device-run.sh [selftest] [client] [sanitize] [bench] [torch]   (default: all)
#
#   selftest: moecheck-worker -selftest (GPU vs CPU model, poisons, every fault)
#   client:   moecheck-worker -client-check (a real kernel fault through internal/worker: one
#             CaseError, the worker restarted, the next case identical)
#   sanitize: compute-sanitizer memcheck, racecheck, initcheck, synccheck on -sanitize (5
#             cases covering every kernel variant, then every corpus case)
#   bench:    moecheck-worker -bench (Qwen3-30B-A3B rank shape, CUDA events)
#   torch:    bench/torch/grouped_mm.py (torch._grouped_mm on the same shapes)
#   lanes:    one worker, LANES lanes sharing one CUDA context (docs/gpu.md, Lanes):
#             -selftest -quick -lanes LANES (concurrent runs bitwise equal to one lane alone),
#             -client-check -lanes 4 (a real fault blamed on its case only), then, with
#             .device/moecheck (make device-suite), check --cases LANES_CASES --seed 3 at
#             --jobs 1 (a worker per job) and --jobs 4, 8, 16 (lanes): cases/s each
#   ncu:      Nsight Compute on one bf16 GEMM 1 launch (speed of light, occupancy, stalls)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-device-out}
mkdir -p "$OUT"
W=.device/moecheck-worker
steps=${*:-selftest client bench torch sanitize ncu lanes}
summary=$OUT/summary.txt
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }
note "gpu: $(nvidia-smi -L 2>&1 | head -1); $(nvidia-smi --query-gpu=driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader 2>&1)"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for s in $steps; do
  case $s in
  selftest)
    t0=$(date +%s)
    timeout 200 "$W" -selftest >"$OUT/selftest.log" 2>&1
    rc=$?
    note "selftest: rc=$rc in $(($(date +%s) - t0))s; $(grep -c ' ok' "$OUT/selftest.log") ok lines, $(grep -c FAIL "$OUT/selftest.log") FAIL lines; $(tail -1 "$OUT/selftest.log")"
    ;;
  client)
    timeout 60 "$W" -client-check >"$OUT/client.log" 2>&1
    note "client-check: rc=$? $(tail -1 "$OUT/client.log")"
    ;;
  sanitize)
    : >"$OUT/sanitize.log"
    for tool in memcheck racecheck initcheck synccheck; do
      t0=$(date +%s)
      timeout "${SAN_TIMEOUT:-240}" "$SAN" --tool "$tool" --error-exitcode 9 "$W" -sanitize \
        -sanitize-corpus corpus/seeds,corpus/regressions >>"$OUT/sanitize.log" 2>&1
      rc=$?
      note "sanitize $tool: rc=$rc in $(($(date +%s) - t0))s; $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize.log" | tail -1)"
    done
    ;;
  bench)
    timeout 150 "$W" -bench -reps 20 >"$OUT/bench.log" 2>&1
    note "bench: rc=$?"
    for v in "-tile-k 32" "-tile-n 128"; do
      # shellcheck disable=SC2086
      timeout 120 "$W" -bench -reps 10 $v >>"$OUT/bench.log" 2>&1
      note "bench $v: rc=$?"
    done
    ;;
  ncu)
    NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
    timeout 150 "$NCU" --kernel-name regex:tc_grouped_bf16_bk_n256k64 --launch-skip 2 --launch-count 1 \
      --section SpeedOfLight --section Occupancy --section WarpStateStats --section ComputeWorkloadAnalysis \
      "$W" -bench -reps 1 -bench-tokens 8192 >"$OUT/ncu.log" 2>&1
    note "ncu gemm1: rc=$? $(grep -E 'Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy' "$OUT/ncu.log" | head -3 | tr -s ' ' | tr '\n' ';')"
    ;;
  lanes)
    n=${LANES:-8}
    timeout 300 "$W" -selftest -quick -lanes "$n" >"$OUT/lanes.log" 2>&1
    note "lanes selftest ($n lanes): rc=$? $(grep '^lanes:' "$OUT/lanes.log" | tr '\n' ' ')"
    timeout 120 "$W" -client-check -lanes 4 >>"$OUT/lanes.log" 2>&1
    note "lanes client-check: rc=$? $(tail -1 "$OUT/lanes.log")"
    if [ -x .device/moecheck ]; then
      for j in 1 4 8 16; do
        extra=""
        [ "$j" = 1 ] && extra="--lanes-per-worker 1"
        # shellcheck disable=SC2086
        timeout 400 .device/moecheck check --backend "worker:$W -backend cuda" --cases "${LANES_CASES:-400}" --seed 3 \
          --keep-going --jobs "$j" $extra >"$OUT/lanes-j$j.log" 2>&1
        rc=$?
        note "lanes check --jobs $j: rc=$rc; $(grep -A1 '^cases ' "$OUT/lanes-j$j.log" | tail -1 | tr -s ' ') (cases failures time cases/s)"
      done
    fi
    ;;
  torch)
    PYTHONUNBUFFERED=1 timeout 120 python3 bench/torch/grouped_mm.py --reps 20 >"$OUT/torch.log" 2>&1
    note "torch: rc=$?"
    ;;
  esac
done
echo "---- results ----"
grep -h RESULT "$OUT"/bench.log "$OUT"/torch.log 2>/dev/null | sed 's/^RESULT //' 
grep -hE "^(gpu|selftest|client|sanitize|bench|torch|ncu|lanes)" "$summary"
