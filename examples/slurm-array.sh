#!/bin/bash
# Sharded ibgpu build on a SLURM cluster: four jobs chained by dependencies.
#
#   1. stats   array job, one task per shard: partial float64 sums of its rows
#   2. combine one task: sums the stats partials in a fixed order, builds the bases
#   3. edges   array job, one task per shard (needs the bases)
#   4. combine one task: sums the edge partials and writes the result directory
#
# Every task reads its shard index from SLURM_ARRAY_TASK_ID (ibgpu build --shards N). A task
# that is requeued or rerun finds its partial complete and verified and exits at once; a damaged
# partial is detected by its checksum and recomputed. Run on a shared filesystem:
#
#   CONFIG=/shared/run/build.json WORK=/shared/run/ibgpu SHARDS=16 bash examples/slurm-array.sh
#
# The stage commands run as written here on one machine too (see test/scale.test.ts), e.g.
#   for i in $(seq 0 $((SHARDS-1))); do ibgpu build "$CONFIG" --stage stats --shard $i/$SHARDS -o "$WORK/parts"; done
set -euo pipefail
CONFIG=${CONFIG:?set CONFIG to the build config (JSON)}
WORK=${WORK:?set WORK to a directory on a shared filesystem}
SHARDS=${SHARDS:-8}
IBGPU=${IBGPU:-ibgpu}               # or: node /path/to/ibgpu/bin/ibgpu.js
SBATCH_OPTS=${SBATCH_OPTS:-"--gpus=1 --cpus-per-task=4 --mem=32G --time=02:00:00"}
mkdir -p "$WORK/logs"

# Optional: print the plan (buffer sizes per stage, passes) before anything is queued.
"$IBGPU" build "$CONFIG" --plan --shard "0/$SHARDS"

# shellcheck disable=SC2086
stats=$(sbatch --parsable $SBATCH_OPTS --array=0-$((SHARDS - 1)) -J ibgpu-stats -o "$WORK/logs/stats-%a.log" \
  --wrap "$IBGPU build '$CONFIG' --stage stats --shards $SHARDS -o '$WORK/parts' --quiet")
# shellcheck disable=SC2086
bases=$(sbatch --parsable --cpus-per-task=4 --mem=32G --dependency=afterok:$stats -J ibgpu-bases -o "$WORK/logs/bases.log" \
  --wrap "$IBGPU combine '$WORK'/parts/stats-*-of-$(printf %05d "$SHARDS").safetensors -o '$WORK/stage'")
# shellcheck disable=SC2086
edges=$(sbatch --parsable $SBATCH_OPTS --array=0-$((SHARDS - 1)) --dependency=afterok:$bases -J ibgpu-edges -o "$WORK/logs/edges-%a.log" \
  --wrap "$IBGPU build '$CONFIG' --stage edges --bases '$WORK/stage' --shards $SHARDS -o '$WORK/parts' --quiet")
# shellcheck disable=SC2086
final=$(sbatch --parsable --cpus-per-task=4 --mem=32G --dependency=afterok:$edges -J ibgpu-result -o "$WORK/logs/result.log" \
  --wrap "$IBGPU combine '$WORK'/parts/edges-*-of-$(printf %05d "$SHARDS").safetensors --bases '$WORK/stage' -o '$WORK/result'")
echo "submitted: stats $stats -> bases $bases -> edges $edges -> result $final"
echo "result directory (when done): $WORK/result   (ibgpu report $WORK/result)"
