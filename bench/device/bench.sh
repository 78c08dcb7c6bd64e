#!/usr/bin/env bash
# On the lent GPU machine (run it through `run`, carry .whl/): install the carried wheels next to the image's torch,
# then bench/bench_sd14.py (issues #10, #7). Arguments: [timeout seconds, default 400] [sections, default all].
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > "$OUT/pip.log" 2>&1 \
  || { tail "$OUT/pip.log"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/bench PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
python3 -c "import torch, diffusers, transformers, snakemake; print(torch.__version__, diffusers.__version__, transformers.__version__, snakemake.__version__)"
timeout "${1:-400}" python3 bench/bench_sd14.py --out "$OUT/sd14_gpu.json" ${2:+--sections "$2"} 2>&1 | grep -v "kept in float32" | tee "$OUT/bench.log"
