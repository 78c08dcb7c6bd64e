#!/usr/bin/env bash
# On the lent GPU machine (through `run`, carry .whl/): the default workflow end to end on the GPU (issue #5), with
# the per-rule job table, the acceptance check and the tables. Argument: timeout seconds (default 320).
set -uo pipefail
[ -d /tmp/site/snakemake ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/*.whl > "$OUT/pip.log" 2>&1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
rm -rf results .snakemake
t0=$(date +%s.%N)
timeout "${1:-320}" python3 -m snakemake --cores "$(nproc)" --keep-going > "$OUT/snakemake.log" 2>&1; rc=$?
t1=$(date +%s.%N); wall=$(python3 -c "print($t1 - $t0)")
echo "snakemake rc=$rc wall=$wall s"; grep -E "steps \(|Error|error" "$OUT/snakemake.log" | tail -15
python3 -m unerase.acceptance results/tables/accuracy.csv 2>&1 | tail -8
python3 bench/dag_cost.py summarize results --label gpu --wall "$wall" --cores "$(nproc)" > "$OUT/dag_summary.md" 2>&1
cp bench/results/dag_gpu.json "$OUT/" 2>/dev/null
tar czf "$OUT/tables.tgz" results/tables results/logs 2>/dev/null; ls -la "$OUT"
