#!/usr/bin/env bash
# The moecheck property suite against the CUDA path, in one device call (the GPU machine has
# no Go: build first with `make device-suite`, carry .device). Logs go under $OUT (default
# ./device-out): suite.txt (the summary, printed last) and suite.tar.gz (every log, the
# results files, the nightly report with its plots).
#
#   scripts/device-suite.sh [steps...]     (default: mutants props nightly fuzz)
#
#   mutants: moecheck mutants --backend cuda (every catalog fault as a kernel flag)
#   props:   the whole random property suite (seed PROPS_SEED), PROPS_SHARDS shards in parallel (one worker and
#            CUDA context each) for PROPS_TIME, results as JSONL; coverage tallied per
#            dtype, activation, layout, EP, poison policy, routing mode
#   nightly: corpus + model presets (real H, I, experts, top-k; PRESET_TOKENS tokens per rank)
#            + random cases, against a worker that faults for real on the corpus case
#            moderate.case (-crash-shape 64,64,32,8,4): the run must finish and record it;
#            then moecheck report (Markdown + HTML + PNG plots)
#   fuzz:    FuzzPath against the CUDA worker for FUZZ_TIME, then time-to-find of
#            FUZZ_FAULTS (one fault switched on each, FUZZ_FIND_TIME limit)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-device-out}
mkdir -p "$OUT"
logs=$(mktemp -d)
export PATH=$PWD/.device:$PATH
M=$PWD/.device/moecheck
B=${SUITE_BACKEND:-cuda} # the worker backend (sim: a smoke run of this script without a GPU)
PROPS_TIME=${PROPS_TIME:-240s}
PROPS_SHARDS=${PROPS_SHARDS:-4}
PROPS_SEED=${PROPS_SEED:-1}
PROPS_WIDE=${PROPS_WIDE:-0} # --wide-pct: percent of H and I draws in the wide (multi-tile) mode; 0 = default 2
PRESET_TOKENS=${PRESET_TOKENS:-512}
FUZZ_TIME=${FUZZ_TIME:-60s}
FUZZ_FIND_TIME=${FUZZ_FIND_TIME:-30s}
FUZZ_FAULTS=${FUZZ_FAULTS:-no-mask-up-dgrad mask-after-weight empty-expert-wgrad combine-in-dtype}
steps=${*:-mutants props nightly fuzz}
summary=$OUT/suite.txt
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }
note "gpu: $(nvidia-smi -L 2>&1 | head -1); cpus: $(nproc)"

for s in $steps; do
  t0=$(date +%s)
  case $s in
  mutants)
    # runs beside the property shards: started in the background, waited for after props
    (timeout 420 "$M" mutants --backend "worker:moecheck-worker -backend $B" >"$logs/mutants.log" 2>&1; echo "rc=$?" >>"$logs/mutants.log") &
    mpid=$!
    ;;
  props)
    mkdir -p "$logs/props"
    pids=()
    for ((i = 0; i < PROPS_SHARDS; i++)); do
      timeout $(( ${PROPS_TIME%s} + 180 )) "$M" nightly --backend "worker:moecheck-worker -backend $B" --presets none --corpus none \
        --time "$PROPS_TIME" --shard "$i/$PROPS_SHARDS" --seed "$PROPS_SEED" --wide-pct "$PROPS_WIDE" --no-artifacts \
        --results "$logs/props/shard$i.jsonl" >"$logs/props/shard$i.log" 2>&1 &
      pids+=($!)
    done
    rcs=""
    for p in "${pids[@]}"; do wait "$p"; rcs="$rcs $?"; done
    note "props: exit statuses:$rcs in $(($(date +%s) - t0))s"
    python3 - "$logs"/props/shard*.jsonl <<'PY' | tee -a "$summary"
import json, sys, collections
n = fails = 0; by = collections.defaultdict(collections.Counter); props = collections.Counter()
for f in sys.argv[1:]:
    for line in open(f):
        r = json.loads(line)
        if r.get("type") != "case": continue
        n += 1; fails += r["status"] == "fail"
        for p in r.get("properties", []): props[p] += 1
        kv = dict(x.split("=", 1) for x in r.get("spec", "").split() if "=" in x)
        for k in ("dtype", "act", "layout", "bias", "world", "routing", "weights", "data", "poison"):
            by[k][kv.get(k, "?")] += 1
        h, i = int(kv.get("H", 0)), int(kv.get("I", 0))
        by["H>40 or I>40 (wide)"]["yes" if max(h, i) > 40 else "no"] += 1
        by["H,I multiples of 64 (>=64)"]["yes" if h >= 64 and h % 64 == 0 and i >= 64 and i % 64 == 0 else "no"] += 1
        if r["status"] == "fail": print("FAIL", r.get("id"), r.get("property"), r.get("message", "")[:300])
print(f"props: {n} random cases on the GPU, {fails} failures")
print("props: property runs: " + ", ".join(f"{k} {v}" for k, v in sorted(props.items())))
for k, c in by.items(): print(f"props: {k}: " + ", ".join(f"{a} {b}" for a, b in sorted(c.items())))
PY
    if [ -n "${mpid:-}" ]; then
      wait "$mpid"
      note "mutants: $(tail -1 "$logs/mutants.log"); $(grep -cE ' yes ' "$logs/mutants.log") caught lines"
      grep -E '^(fault|[a-z-]+ +(yes|no) )|every fault|not caught' "$logs/mutants.log" | tee -a "$summary"
      mpid=""
    fi
    ;;
  nightly)
    mkdir -p "$logs/nightly"
    timeout 300 "$M" nightly --backend "worker:moecheck-worker -backend $B -crash-shape 64,64,32,8,4" \
      --presets qwen3-30b-a3b,gpt-oss-20b,mixtral-8x7b,deepseek-v3,qwen3-next-80b-a3b --preset-tokens "$PRESET_TOKENS" --preset-device cpu --preset-mem 30720 \
      --time 45s --seed 3 --results "$logs/nightly/results.jsonl" --junit "$logs/nightly/junit.xml" \
      >"$logs/nightly/nightly.log" 2>&1
    rc=$?
    note "nightly (crash on moderate.case): rc=$rc in $(($(date +%s) - t0))s; $(tail -3 "$logs/nightly/nightly.log" | tr '\n' ' ')"
    grep -h '"case_error"' "$logs/nightly/results.jsonl" | cut -c1-300 | tee -a "$summary"
    grep -h '"kind":"preset"' "$logs/nightly/results.jsonl" | python3 -c '
import json,sys
for l in sys.stdin:
    r=json.loads(l); print("preset:", r["id"], r["status"], r.get("config",""), "%.0f ms" % r.get("elapsed_ms",0), "max ratio", r.get("max_ratio"), r.get("message","")[:200])' | tee -a "$summary"
    "$M" report "$logs/nightly/results.jsonl" --out "$logs/nightly/report" >"$logs/nightly/report.log" 2>&1
    note "report: rc=$? $(ls "$logs/nightly/report" 2>/dev/null | tr '\n' ' ')"
    ;;
  fuzz)
    (cd fuzz && MOECHECK_BACKEND="worker:moecheck-worker -backend $B" timeout 200 ../.device/fuzz.test -test.run '^$' -test.fuzz '^FuzzPath$' \
      -test.fuzztime "$FUZZ_TIME" -test.parallel 8 -test.fuzzcachedir "$logs/fuzzcache" >"$logs/fuzz-clean.log" 2>&1)
    note "fuzz FuzzPath on cuda, $FUZZ_TIME: rc=$? $(grep -E 'elapsed' "$logs/fuzz-clean.log" | tail -1)"
    for f in $FUZZ_FAULTS; do
      t1=$(date +%s%N)
      (cd fuzz && MOECHECK_BACKEND="worker:moecheck-worker -backend $B" MOECHECK_FAULTS=$f timeout 120 ../.device/fuzz.test -test.run '^$' \
        -test.fuzz '^FuzzPath$' -test.fuzztime "$FUZZ_FIND_TIME" -test.parallel 8 \
        -test.fuzzcachedir "$logs/fuzzcache-$f" >"$logs/fuzz-$f.log" 2>&1)
      rc=$?
      note "fuzz find $f on cuda: rc=$rc (1 = found) in $(( ($(date +%s%N) - t1) / 1000000 )) ms; $(grep -m1 -E 'failure while testing seed corpus|Failing input written' "$logs/fuzz-$f.log")"
    done
    ;;
  esac
done
tar -czf "$OUT/suite.tar.gz" -C "$logs" . 2>/dev/null
echo "---- suite ----"
cat "$summary"
