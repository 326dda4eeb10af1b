#!/usr/bin/env bash
# Regenerates predictors/device_1.json, the predictor irene uses when no --predictor is named:
# irene's default configuration with model-spec features only (so that it predicts trees built
# from a Hugging Face config alone), trained on every model of device_1 of the published IrEne
# dataset (the six of the paper and sshleifer/tiny-ctrl).
# Usage: scripts/make-default-predictor.sh [BUILD_DIR]   (default build/; IRENE_DATA overrides
# the dataset folder, default ../shared/irene-data)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
DATA="${IRENE_DATA:-$(cd .. && pwd)/shared/irene-data}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$BUILD/irene" data import "$DATA/device_1" -o "$TMP/device_1.jsonl" --all  # tiny-ctrl too
"$BUILD/irene" train "$TMP/device_1.jsonl" -o predictors/device_1.json --config configs/model-specs.json \
  --hardware "device_1 of the published IrEne dataset" \
  --source "irene data import ../shared/irene-data/device_1 (the published IrEne dataset)"
# Its time companion, predictors/device_1-time.json: scripts/make-time-predictor.sh.
