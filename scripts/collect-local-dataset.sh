#!/usr/bin/env bash
# Collects a dataset of the machine it runs on, fit for leave-one-model-out training and checking
# (irene crossval) and for an extrapolation test: six models of two families (BERT-like encoders,
# GPT-like decoders) on a batch x sequence grid, and one model more than 3x larger than the largest
# of them (gpt2-large, 774M parameters, against roberta-base's 125M) on the same grid.
#
# Usage: scripts/collect-local-dataset.sh [OUT]      (default local/dataset.jsonl; local/ is ignored by git)
#
# Every node is run for real with libtorch (build/irene-measure): seconds per forward pass always,
# energy too where a sensor exists (--meter auto). Progress goes to standard error; Ctrl-C (or a
# kill) keeps every finished tree, and running the same command again resumes where it stopped.
# Keep the machine otherwise quiet while it runs: the times are what it measures.
#
# The grid is the paper's scaled to a CPU (the paper: batch 8-32 x seq 32-256 on GPUs): batch
# 1,2,4,8 x seq 32,64,128,256, 16 trees per model, 112 trees. On the 2-core development VM (AMD EPYC,
# OpenBLAS, 1 libtorch thread) it takes about an hour (bench/RESULTS.md, "Dataset of this machine").
#
# Environment overrides: IRENE_BUILD (build/), IRENE_MODELS (the six), IRENE_LARGE_MODEL
# (gpt2-large; empty: none), IRENE_BATCH, IRENE_SEQ, IRENE_METER (auto), IRENE_THREADS (1),
# IRENE_SHARD (K/N: one part of the grid, e.g. per Slurm array task; join with irene data merge).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-local/dataset.jsonl}"
BUILD="${IRENE_BUILD:-build}"
MODELS="${IRENE_MODELS-bert-base-uncased,distilbert-base-uncased,roberta-base,gpt2,distilgpt2,openai-gpt}"
LARGE="${IRENE_LARGE_MODEL-gpt2-large}"
BATCH="${IRENE_BATCH:-1,2,4,8}"
SEQ="${IRENE_SEQ:-32,64,128,256}"
ALL="$MODELS${LARGE:+,$LARGE}"
ALL="${ALL#,}"
[ -n "$ALL" ] || { echo "irene: error: no models to collect (IRENE_MODELS and IRENE_LARGE_MODEL are empty)" >&2; exit 2; }
# Short measurement windows (0.1 s, at least 3 that agree within 2%, at most 8) keep the hour:
# a node that runs under 0.1 s repeats back to back within its window.
SCHEDULE=(--min-seconds 0.1 --runs 3 --max-runs 8 --spread 0.02 --pause 0.05 --warmup 0.1 --idle-seconds 2
          --threads "${IRENE_THREADS:-1}")
SHARD=()
[ -z "${IRENE_SHARD:-}" ] || SHARD=(--shard "$IRENE_SHARD")
mkdir -p "$(dirname "$OUT")"
echo "irene: collecting $ALL x batch $BATCH x seq $SEQ into $OUT (rerun the same command to resume)" >&2
exec "$BUILD/irene" collect --models "$ALL" --batch "$BATCH" --seq "$SEQ" --meter "${IRENE_METER:-auto}" \
  "${SCHEDULE[@]}" ${SHARD[@]+"${SHARD[@]}"} -o "$OUT"
