#!/usr/bin/env bash
# Regenerates predictors/device_1.json, the predictor irene uses when no --predictor is named:
# irene's default configuration with model-spec features only (so that it predicts trees built
# from a Hugging Face config alone), trained on every model of device_1 of the published IrEne
# dataset (the six of the paper and sshleifer/tiny-ctrl). With --time: its time companion,
# predictors/device_1-time.json, the same features, configuration and data with target time
# (seconds per forward pass, the dataset's times_mean), which generations use for their latency,
# tokens per second and mean power (Predictor::time_companion).
# Usage: scripts/make-default-predictor.sh [--time] [BUILD_DIR]   (default build/; IRENE_DATA
# overrides the dataset folder, default ../shared/irene-data)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=predictors/device_1.json
TARGET=()
if [ "${1:-}" = "--time" ]; then
  OUT=predictors/device_1-time.json
  TARGET=(--target time)
  shift
fi
BUILD="${1:-build}"
DATA="${IRENE_DATA:-$(cd .. && pwd)/shared/irene-data}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$BUILD/irene" data import "$DATA/device_1" -o "$TMP/device_1.jsonl" --all  # tiny-ctrl too
"$BUILD/irene" train "$TMP/device_1.jsonl" -o "$OUT" --config configs/model-specs.json "${TARGET[@]}" \
  --hardware "device_1 of the published IrEne dataset" \
  --source "irene data import ../shared/irene-data/device_1 (the published IrEne dataset)"
