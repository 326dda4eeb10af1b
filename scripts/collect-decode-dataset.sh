#!/usr/bin/env bash
# Collects decode steps (and their prefills) of small LLMs on the machine it runs on, for the time
# predictor of LLM steps (configs/llm-time.json, irene crossval): five models of three families
# (pythia-160m: GPT-NeoX; opt-125m: OPT; Qwen2-0.5B, TinyLlama-1.1B and SmolLM2-135M: Llama-like,
# the three with grouped-query attention), built-in configurations with random weights (nothing is
# downloaded), float32, eager attention.
#
# Usage: scripts/collect-decode-dataset.sh [OUT]      (default local/decode.jsonl; local/ is ignored by git)
#
# Two grids go into the same file: the decode steps (--phase decode), batch 1,2,4,8,16,32 x past
# 64,256,1024,2047 (24 trees per model, 120 trees; 2047 + the new token fills the 2,048 positions of
# pythia-160m and opt-125m), then the prefills, batch 1,2 x seq 64,128
# (4 per model, 20 trees). Every node is run for real with libtorch (build/irene-measure);
# seconds per pass always, energy too where a sensor exists (--meter auto). Progress goes to
# standard error; Ctrl-C (or a kill) keeps every finished tree, and running the same command again
# resumes where it stopped (each grid skips the trees already in OUT). Keep the machine otherwise
# quiet while it runs: the times are what it measures. Measured: 52 minutes on the 2-core
# development VM (the schedule of collect-local-dataset.sh: short windows, few well-measured points).
#
# Repeated passes (IRENE_REPEATS=N, default 1): the whole collection runs N times, pass K into
# OUT's name with .passK before .jsonl (each resumable as above), and OUT becomes their median node by
# node (irene data merge --median: every node's times_mean the median of its N measurements, with
# times_repeat_spread, how far the passes differ). On this VM the runs of one pass agree within 2%
# while whole steps differ by 6-7% (median over trees, up to 48%) between passes minutes apart; the README's decode figures rest
# on the median of three passes.
#
# Environment overrides: IRENE_BUILD (build/), IRENE_MODELS (the five), IRENE_BATCH, IRENE_PAST
# (decode grid), IRENE_PREFILL_BATCH, IRENE_PREFILL_SEQ (prefill grid; IRENE_PREFILL_SEQ empty: no
# prefills), IRENE_METER (auto), IRENE_THREADS (1), IRENE_REPEATS (1).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-local/decode.jsonl}"
BUILD="${IRENE_BUILD:-build}"
MODELS="${IRENE_MODELS-EleutherAI/pythia-160m,facebook/opt-125m,Qwen/Qwen2-0.5B,TinyLlama/TinyLlama-1.1B-Chat-v1.0,HuggingFaceTB/SmolLM2-135M}"
BATCH="${IRENE_BATCH:-1,2,4,8,16,32}"
PAST="${IRENE_PAST:-64,256,1024,2047}"
PREFILL_BATCH="${IRENE_PREFILL_BATCH:-1,2}"
PREFILL_SEQ="${IRENE_PREFILL_SEQ-64,128}"
[ -n "$MODELS" ] || { echo "irene: error: no models to collect (IRENE_MODELS is empty)" >&2; exit 2; }
SCHEDULE=(--min-seconds 0.1 --runs 3 --max-runs 8 --spread 0.02 --pause 0.05 --warmup 0.1 --idle-seconds 2
          --threads "${IRENE_THREADS:-1}" --meter "${IRENE_METER:-auto}")
# Runs one collect as a child and passes Ctrl-C or a kill on to it (the child then keeps its
# finished trees and stops); the script stops with the child's status.
child=
trap '[ -z "$child" ] || kill -TERM "$child" 2>/dev/null' TERM INT
run() {
  "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child" || rc=$?; done  # a signal ended the wait early
  child=
  return "$rc"
}
mkdir -p "$(dirname "$OUT")"
# Decode steps allocate tensors far above glibc's mmap threshold (torch.cat of the cache): without
# transparent huge pages each such call page-faults its memory afresh, 4 KiB at a time, and on a
# virtual machine that can dominate the step (seconds instead of tenths; README "Decode steps").
thp=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || true)
if [ -n "$thp" ] && [ "$thp" != always ]; then
  echo "irene: note: transparent huge pages are '$thp' here: large allocations fault 4 KiB pages on every call;" \
       "the README's figures were collected with 'always' (echo always > /sys/kernel/mm/transparent_hugepage/enabled)" >&2
fi
REPEATS="${IRENE_REPEATS:-1}"
case "$REPEATS" in
  '' | *[!0-9]* | 0) echo "irene: error: IRENE_REPEATS must be a whole number >= 1, not '$REPEATS'" >&2; exit 2 ;;
esac
collect_pass() {  # collect_pass FILE LABEL
  echo "irene: [1/2]$2 decode steps of $MODELS x batch $BATCH x past $PAST into $1 (rerun the same command to resume)" >&2
  run "$BUILD/irene" collect --models "$MODELS" --batch "$BATCH" --phase decode --past "$PAST" "${SCHEDULE[@]}" -o "$1"
  if [ -n "$PREFILL_SEQ" ]; then
    echo "irene: [2/2]$2 prefills of $MODELS x batch $PREFILL_BATCH x seq $PREFILL_SEQ into $1" >&2
    run "$BUILD/irene" collect --models "$MODELS" --batch "$PREFILL_BATCH" --seq "$PREFILL_SEQ" "${SCHEDULE[@]}" -o "$1"
  fi
}
if [ "$REPEATS" = 1 ]; then
  collect_pass "$OUT" ""
else
  passes=()
  for k in $(seq 1 "$REPEATS"); do
    pass="${OUT%.jsonl}.pass$k.jsonl"
    passes+=("$pass")
    collect_pass "$pass" " pass $k of $REPEATS:"
  done
  "$BUILD/irene" data merge --median "${passes[@]}" -o "$OUT"
fi
echo "irene: done; cross-validate with: $BUILD/irene crossval $OUT --config configs/llm-time.json" >&2
