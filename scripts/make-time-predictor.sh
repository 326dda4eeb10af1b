#!/usr/bin/env bash
# Regenerates predictors/device_1-time.json, the time companion of the shipped predictor: the same
# model-spec features and configuration (configs/model-specs.json), target time (seconds per
# forward pass, the dataset's times_mean), trained on every model of device_1 of the published
# IrEne dataset. Generations predicted with the shipped predictor use it for their latency,
# tokens per second and mean power (explain/generation.hpp).
# Usage: scripts/make-time-predictor.sh [BUILD_DIR]   (default build/; IRENE_DATA overrides the
# dataset folder, default ../shared/irene-data)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
DATA="${IRENE_DATA:-$(cd .. && pwd)/shared/irene-data}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$BUILD/irene" data import "$DATA/device_1" -o "$TMP/device_1.jsonl" --all
"$BUILD/irene" train "$TMP/device_1.jsonl" -o predictors/device_1-time.json --config configs/model-specs.json \
  --target time --hardware "device_1 of the published IrEne dataset" \
  --source "irene data import ../shared/irene-data/device_1 (the published IrEne dataset)"
