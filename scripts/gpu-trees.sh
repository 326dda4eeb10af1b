#!/usr/bin/env bash
# The trees scripts/gpu-collect.py measures on a GPU machine (issue: node-level energy on a real GPU):
# three small LLMs of two families in bfloat16 with sdpa, decode steps at batch 1, 8, 64 x past 256,
# 2048 and prefills of 1x256, 8x256, 1x2048 tokens, then decode at batch 256 (measured last).
#   scripts/gpu-trees.sh [IRENE] [OUT]   (defaults: build/irene, local/gpu/trees.jsonl)
# TinyLlama's 2048 positions are exceeded by one at past 2048: --allow-long (its rotary embedding
# extends past them, as transformers computes it).
set -euo pipefail
cd "$(dirname "$0")/.."
irene=${1:-build/irene}
out=${2:-local/gpu/trees.jsonl}
mkdir -p "$(dirname "$out")"
models=(Qwen/Qwen2-0.5B TinyLlama/TinyLlama-1.1B-Chat-v1.0 data/gpu-h200/configs/llama-3.2-1b.json)
common=(--dtype bfloat16 --attention sdpa --allow-long --format jsonl)
tmp=$(mktemp "${out}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
for m in "${models[@]}"; do
  for b in 1 8 64; do
    for p in 256 2048; do "$irene" tree "$m" --phase decode --batch "$b" --past "$p" "${common[@]}" >>"$tmp"; done
  done
  for bs in 1x256 8x256 1x2048; do
    "$irene" tree "$m" --batch "${bs%x*}" --seq "${bs#*x}" "${common[@]}" >>"$tmp"
  done
done
for m in "${models[@]}"; do
  for p in 256 2048; do "$irene" tree "$m" --phase decode --batch 256 --past "$p" "${common[@]}" >>"$tmp"; done
done
mv "$tmp" "$out"
trap - EXIT
echo "$(wc -l <"$out") trees in $out"
