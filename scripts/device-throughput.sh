#!/usr/bin/env bash
# Issue 14's acceptance figures on the GPU machine, in one device call (no Go there: build
# first with `make device-suite` and, for the "before" columns, the previous round's binaries in
# .device/old (moecheck, moecheck-worker, fuzz.test built at the commit named in
# .device/old/COMMIT); carry .device). Logs under $OUT: summary.txt (printed last), logs.tgz.
#
#   scripts/device-throughput.sh [STEP ...]     (default: all, in this order)
#
#   cuda      (after a warm-up that fills the driver's JIT cache)
#             moecheck check --backend cuda, every property, seed 3: the previous round's binary
#             with --jobs 1 (before), this one with --jobs 1 --lanes-per-worker 1 and with
#             --jobs J for each J of CUDA_JOBS (default 16; lanes: one worker process, one CUDA
#             context, J streams; CUDA_S seconds each, default 40; CUDA_J1=0 skips --jobs 1);
#             cases/s from the CLI's summary and its steady rate, the host's busy cores, the
#             GPU and the cores to each run in turn
#   preset    Qwen3-30B-A3B bf16 at 16,384 tokens on the CUDA path, matches (forward and
#             backward, stage by stage): the EP-8 rank 3 case (16,570 rows of 131,072) and the
#             whole EP-1 layer (131,072 rows); wall time and peak RSS of the process tree
#   fuzz      FuzzPath against the CUDA worker for FUZZ_S seconds (default 45), before and after,
#             -test.parallel FUZZ_PAR (default 4): execs/s from the fuzz engine's last line
#   mutants   moecheck mutants --backend cuda (exact), with lanes
#   selftest  moecheck-worker -selftest (not in the default steps: the warm-up runs -selftest -quick)
set -uo pipefail
cd "$(dirname "$0")/.."
FINAL=${OUT:-device-out}
L=$(mktemp -d)/logs
mkdir -p "$L" "$FINAL"
export PATH=$PWD/.device:$PATH
M=$PWD/.device/moecheck
W=$PWD/.device/moecheck-worker
O=$PWD/.device/old
FUZZ_S=${FUZZ_S:-30}
FUZZ_PAR=${FUZZ_PAR:-4}
STEPS=${*:-cuda preset fuzz mutants}
S=$L/summary.txt
: >"$S"
note() { echo "$*" | tee -a "$S"; }
# shellcheck source=scripts/timed.sh
. scripts/timed.sh # (the working directory is the repository root)
# timedt: timed, then its last line (rc, wall, peak RSS) on stdout
timedt() {
  timed "$@"
  tail -1 "$L/$1.txt"
}
# host CPU use between two /proc/stat samples: busy cores of all (user+nice+system+irq+softirq)
cpustat() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
cpubusy() { echo "$1 $2" | awk -v n="$(nproc)" '{b=$3-$1; t=$4-$2; if (t>0) printf "%.1f of %d cores busy", n*b/t, n}'; }
# steady NAME: cases/s from the first to the last progress line of run NAME (start-up left out)
steady() { grep -E '^  [0-9]+ cases, [0-9]+ failing, [0-9]+s, ' "$L/$1.txt" | awk '{c[NR]=$1; t[NR]=$5+0} END{if(NR>=2 && t[NR]>t[1]) printf "%.1f cases/s (%ss to %ss)", (c[NR]-c[1])/(t[NR]-t[1]), t[1], t[NR]}'; }
# rate NAME: the CLI summary's cases, failures, time, cases/s of run NAME.
rate() { grep -A1 '^cases ' "$L/$1.txt" | tail -1 | tr -s ' '; }
has() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
# the old binaries may travel gzipped (the device call carries at most 64 MiB)
for f in "$O"/*.gz; do [ -f "$f" ] && gunzip -f "$f" && chmod +x "${f%.gz}"; done
note "gpu: $(nvidia-smi -L 2>&1 | head -1); cpus: $(nproc); old: $(cat "$O/COMMIT" 2>/dev/null)"

if has cuda || has preset; then
  # Warm the driver's PTX JIT cache first (~/.nv/ComputeCache): a fresh machine spends about
  # 14 CPU-seconds compiling the kernels at the first worker start, which a nightly pays once.
  r=$(timedt warmup 150 "$W" -selftest -quick)
  note "warm-up (moecheck-worker -selftest -quick, JIT cache): $(tail -2 "$L/warmup.txt" | head -1) $r"
fi
if has cuda; then
  if [ -x "$O/moecheck" ]; then
    r=$(PATH=$O:$PATH timedt cuda-old-j1 60 "$O/moecheck" check --backend "worker:$O/moecheck-worker -backend cuda" --jobs 1 --time 30s --seed 3 --keep-going --max-shrinks 40)
    note "cuda before (old binary, --jobs 1): $(rate cuda-old-j1) (cases failures time cases/s) $r"
  fi
  if [ "${CUDA_J1:-1}" = 1 ]; then
    r=$(timedt cuda-j1 60 "$M" check --backend cuda --jobs 1 --lanes-per-worker 1 --time 30s --seed 3 --keep-going --max-shrinks 40)
    note "cuda --jobs 1: $(rate cuda-j1) $r"
  fi
  for j in ${CUDA_JOBS:-16}; do
    c0=$(cpustat)
    r=$(timedt cuda-j$j 90 "$M" check --backend cuda --jobs $j --cases 40000 --time ${CUDA_S:-40}s --seed 3 --keep-going --max-shrinks 40)
    note "cuda --jobs $j (lanes): $(rate cuda-j$j) $r; host $(cpubusy "$c0" "$(cpustat)"); steady $(steady cuda-j$j)"
  done
fi
if has preset; then
  # the EP-1 layer gets the acceptance's 60 s (it needs about 8x the EP-8 rank's GEMM work)
  for pl in qwen3-30b-a3b/ep8/rank3/T16384/seed1:150 qwen3-30b-a3b/ep1/rank0/T16384/seed1:60; do
    p=${pl%:*}
    n=preset-$(echo "$p" | cut -d/ -f2)
    # PRESET_PROF=1: CPU profiles of the CLI and its worker (MOECHECK_CPUPROFILE) into the logs
    r=$(MOECHECK_CPUPROFILE=${PRESET_PROF:+$L/prof-$n} timedt "$n" "${pl##*:}" "$M" check --backend cuda --preset "$p" --properties matches)
    note "preset $p (cuda, matches): $(rate "$n") $r"
  done
fi
if has fuzz; then
  for v in old new; do
    bin=$PWD/.device/fuzz.test wk=$W
    [ $v = old ] && bin=$O/fuzz.test wk=$O/moecheck-worker
    [ -x "$bin" ] || continue
    (cd fuzz && MOECHECK_BACKEND="worker:$wk -backend cuda" timeout $((FUZZ_S + 60)) "$bin" -test.run '^$' -test.fuzz '^FuzzPath$' \
      -test.fuzztime "${FUZZ_S}s" -test.parallel "$FUZZ_PAR" -test.fuzzcachedir "$L/fuzzcache-$v" >"$L/fuzz-$v.txt" 2>&1)
    rc=$?
    last=$(grep -E 'execs: [0-9]+' "$L/fuzz-$v.txt" | tail -1)
    note "FuzzPath $v ($FUZZ_S s, parallel $FUZZ_PAR): rc=$rc; $last"
  done
fi
if has mutants; then
  r=$(timedt mutants-exact 200 "$M" mutants --backend cuda --jobs 8)
  note "mutants cuda exact: $(grep -iE 'caught|passed' "$L/mutants-exact.txt" | tail -2 | tr '\n' ' ') $r"
fi
if has selftest; then
  r=$(timedt selftest 200 "$W" -selftest)
  note "selftest: $(tail -2 "$L/selftest.txt" | head -1) $r"
fi
cp "$S" "$FINAL/summary.txt"
tar czf "$FINAL/logs.tgz" -C "$(dirname "$L")" logs
echo "---- summary ----"
cat "$S"
