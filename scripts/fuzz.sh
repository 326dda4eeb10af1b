#!/usr/bin/env bash
# Fuzzes irene's parsers with libFuzzer (clang-14, AddressSanitizer + UndefinedBehaviorSanitizer
# with float-cast-overflow, no recovery).
#
# Usage: scripts/fuzz.sh [SECONDS] [RUNS] [HARNESS...]
#   SECONDS  time per harness (default 600)
#   RUNS     executions per harness (default 1000000); each harness stops at whichever comes first
#   HARNESS  config jsonl csv trace predictor query generation serve serving serving_csv
#            (default: all ten)
#   JOBS     (environment) parallel build jobs (default: nproc)
#
# Builds build-fuzz/ (-DIRENE_FUZZ=ON, torch-free), makes seed corpora from the repository's own
# files (built-in configs, trees irene writes, the shipped predictor, dataset CSV heads when
# ../shared/irene-data is there, a power trace, API requests, serving workloads, the head of the
# serving table when ../shared/llm-energy is there and a tiny synthetic one), then runs each harness with a 2 GiB
# memory limit and a 10 s timeout per input. The corpus grows in build-fuzz/corpus/HARNESS. Every
# crash, leak, timeout or out-of-memory input is copied into tests/fuzz/regressions/HARNESS/,
# which CTest replays (FuzzReplay.*): commit it with the fix. A summary (executions, exec/s,
# corpus size, findings) is printed and written to build-fuzz/fuzz-summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-600}
RUNS=${2:-1000000}
shift $(( $# > 2 ? 2 : $# )) || true
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(config jsonl csv trace predictor query generation serve serving serving_csv)
B=build-fuzz

CXX=clang++-14 cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIRENE_FUZZ=ON \
  -DIRENE_WITH_TORCH=OFF -DIRENE_BUILD_PYTHON=OFF -DIRENE_BUILD_BENCH=OFF >/dev/null
targets=(irene_cli)
for h in "${HARNESSES[@]}"; do targets+=("fuzz_$h"); done
cmake --build "$B" -j "${JOBS:-$(nproc)}" --target "${targets[@]}"

# ---- seed corpora from the repository's own files ----
seed() { mkdir -p "$B/corpus/$1"; }
export IRENE_SOURCE_DIR="$PWD"
seed config
for f in models/*/config.json models/*/*/config.json tests/data/*/config.json; do
  [ -f "$f" ] && cp "$f" "$B/corpus/config/seed-$(echo "$f" | tr '/' '_')"
done
seed jsonl
for m in $("$B/irene" tree --list | sed -n 's/^  //p'); do
  "$B/irene" tree "$m" --batch 2 --seq 8 --format jsonl -o "$B/corpus/jsonl/seed-$(echo "$m" | tr '/' '_').jsonl"
done
"$B/irene" predict distilgpt2 --batch 2 --seq 8 --format jsonl -o "$B/corpus/jsonl/seed-predicted.jsonl"
seed predictor
cp predictors/*.json "$B/corpus/predictor/"
seed trace
printf 'timestamp,watts\n1700000000,100\n1700000000.5,120.25\n1700000001,95\n\n1700000002,0\n' \
  >"$B/corpus/trace/seed-trace.csv"
seed csv
DATA="${IRENE_DATA:-$(cd .. && pwd)/shared/irene-data}"
i=0
for level in model module ml1 ml2; do
  f="$DATA/device_1/${level}_level_features.csv"
  if [ -f "$f" ]; then
    { printf "\\x$(printf %02x $i)"; head -6 "$f"; } >"$B/corpus/csv/seed-$level.csv"
  fi
  i=$((i + 1))
done
[ -n "$(ls "$B/corpus/csv")" ] || printf '\000batch_size,seq_len,flops,mem_bytes,energy_mean,level_name,model_name\n8,32,1,1,1,bert,bert\n' \
  >"$B/corpus/csv/seed-synthetic.csv"
seed query
n=0
for q in 'GET /api/health' 'GET /api/models' 'GET /api/predict?model=gpt2&batch=2&seq=16' \
  'GET /api/predict?model=bert-base-uncased&batch=1&seq=8&set=num_hidden_layers%3D2&top=3' \
  'GET /api/compare?a=gpt2&b=distilgpt2&batch=1&seq=8&seq_b=16&set_a=n_layer:1' \
  'POST /api/predict?batch=1&seq=8
{"model_type":"gpt2","vocab_size":50,"n_embd":16,"n_layer":2,"n_head":2,"n_positions":32}'; do
  printf '%s' "$q" >"$B/corpus/query/seed-$n"
  n=$((n + 1))
done

seed generation
n=0
for g in 'gpt2 8 4' 'distilgpt2 16 32 2 dtype=float16' '0 4 8 1 attention=sdpa n_layer=2' 'llama-tiny 32 16 1 dtype=bfloat16'; do
  printf '%s' "$g" >"$B/corpus/generation/seed-$n"
  n=$((n + 1))
done
seed serve
n=0
for r in 'GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n' \
  'GET /api/predict?model=gpt2&batch=2&seq=16 HTTP/1.1\r\nHost: x\r\n\r\nGET /api/models HTTP/1.1\r\nHost: x\r\n\r\n' \
  'GET /api/generate?model=distilgpt2&prompt=8&generate=4&steps=0 HTTP/1.1\r\nHost: x\r\n\r\n' \
  'POST /api/predict?batch=1&seq=8 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 88\r\n\r\n{"model_type":"gpt2","vocab_size":50,"n_embd":16,"n_layer":2,"n_head":2,"n_positions":32}'; do
  printf "$r" >"$B/corpus/serve/seed-$n"
  n=$((n + 1))
done

seed serving
n=0
for s in 'gpt2 H100' 'Qwen/Qwen3-8B H100 8 180 400' 'Qwen/Qwen3-30B-A3B H100 16 180 400 gpus=2 precision=fp8 kv=fp8' \
  'openai/gpt-oss-20b B200 64 1200 300 precision=mxfp4' '3 1 32 260 800 num_hidden_layers=2' \
  'google/gemma-2-2b json 8 180 400
{"name":"X1","memory_bytes":8e10,"memory_bandwidth_bytes_per_s":2e12,"peak_flops_per_s":{"bf16":5e14,"fp8":1e15},"tdp_watts":500}' \
  'json A100-80GB 4 100 100
{"model_type":"llama","vocab_size":128,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":4096}'; do
  printf '%s' "$s" >"$B/corpus/serving/seed-$n"
  n=$((n + 1))
done
seed serving_csv
TABLE="${IRENE_LLM_ENERGY:-$(cd .. && pwd)/shared/llm-energy/mlenergy-v3-llm.csv}"
[ -f "$TABLE" ] && head -20 "$TABLE" >"$B/corpus/serving_csv/seed-mlenergy-head.csv"
{
  echo 'model_id,task,architecture,weight_precision,gpu_model,num_gpus,tensor_parallel,expert_parallel,data_parallel,max_num_seqs,avg_batch_size,avg_output_len,energy_per_token_joules,energy_per_request_joules,avg_power_watts,median_itl_ms,p90_itl_ms,output_throughput_tokens_per_sec'
  echo 'Qwen/Qwen3-8B,lm-arena-chat,Dense Transformer,bfloat16,H100,1,1,1,1,8,7.9,400,0.5316,212.7,350,12,15.6,658.3'
  echo 'Qwen/Qwen2-0.5B,gpqa,Dense Transformer,bfloat16,H100,1,1,1,1,32,31,800,0.07258,58.06,250,9,11.7,3444'
  echo 'gpt2,lm-arena-chat,Dense Transformer,fp8,A100-80GB,2,2,1,1,16,15.8,420,0.8544,358.9,900,15,19.5,1053'
} >"$B/corpus/serving_csv/seed-synthetic.csv"

declare -A MAXLEN=([config]=4096 [jsonl]=65536 [csv]=8192 [trace]=4096 [predictor]=65536 [query]=4096 [generation]=256 [serve]=8192 [serving]=4096 [serving_csv]=8192)
summary="$B/fuzz-summary.md"
{
  echo "| harness | executions | exec/s | corpus (files) | seconds | findings |"
  echo "| --- | --- | --- | --- | --- | --- |"
} >"$summary"
status=0
for h in "${HARNESSES[@]}"; do
  rm -rf "$B/crashes/$h"  # this run's findings only (earlier ones are in tests/fuzz/regressions)
  mkdir -p "$B/crashes/$h" "$B/logs"
  log="$B/logs/$h.log"
  echo "fuzz: $h (up to $RUNS runs or $SECONDS_PER s)"
  start=$(date +%s)
  set +e
  "$B/fuzz/fuzz_$h" "$B/corpus/$h" -runs="$RUNS" -max_total_time="$SECONDS_PER" -max_len="${MAXLEN[$h]}" \
    -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$B/crashes/$h/" >"$log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "$B/corpus/$h" -type f | wc -l)
  found=$(find "$B/crashes/$h" -type f | wc -l)
  if [ "$found" -gt 0 ]; then
    mkdir -p "tests/fuzz/regressions/$h"
    cp "$B/crashes/$h"/* "tests/fuzz/regressions/$h/"
    echo "fuzz: $h: $found finding(s) copied to tests/fuzz/regressions/$h/ (see $log)"
    status=1
  elif [ "$rc" -ne 0 ]; then
    echo "fuzz: $h exited $rc without an artifact (see $log)"
    status=1
  fi
  echo "| $h | ${execs:-?} | ${rate:-?} | $corpus | $secs | $found |" >>"$summary"
done
cat "$summary"
exit $status
