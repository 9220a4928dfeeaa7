#!/usr/bin/env bash
# Issue 19's GPU measurements in one run (device machine, repo root): the Qwen2.5-VL-3B architecture
# with random weights, LoRA r=32, bf16, gradient checkpointing, 1,024 visual tokens per image.
#   bash scripts/bench_gpu.sh            # reports in ${OUT:-artifacts/bench}/train_*.json
# Each configuration is one `metaembed bench train` call with its own time limit, so one that runs
# out of memory or time does not stop the others.
set -u
OUT=${OUT:-artifacts/bench}
LIMIT=${LIMIT:-150}
mkdir -p "$OUT"
run() {  # name, then bench train options
  local name=$1; shift
  echo "== $name: $*"
  timeout "$LIMIT" python -m metaembed.cli bench train --steps 4 --warmup 2 --encode-batch 32 \
    --out "$OUT/train_$name.json" "$@" > "$OUT/train_$name.log" 2>&1
  echo "   exit $? (log $OUT/train_$name.log)"; tail -n 12 "$OUT/train_$name.log"
}
run sdpa_b8 --attn sdpa --batch 8          # the 2.6 % MFU baseline path
run packed_b8 --attn packed --batch 8
run packed_b32 --attn packed --batch 32
run gradcache_b128 --attn packed --batch 128 --grad-cache-chunk 32
run gradcache_b1024 --attn packed --batch 1024 --grad-cache-chunk 64 --steps 1 --warmup 1
