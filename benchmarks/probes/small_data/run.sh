#!/bin/bash
# Small-data training probes on SST-2 (issue 20): the defaults with one idea switched on by an environment variable
# of probe_hooks.patch, which also logs TEST accuracy at every evaluation (never used for any choice; it lets one run
# show what each checkpoint-selection rule would have given). Not product code: apply the patch to a scratch worktree.
#
#   git worktree add /tmp/probe e6905c4 && (cd /tmp/probe && git apply benchmarks/probes/small_data/probe_hooks.patch)
#   benchmarks/probes/small_data/run.sh /tmp/probe /tmp/pr TAG ROWS "ENV=VALUE ..." "key=value ..." SEED...
#
# Hooks: TF_LLRD=d (layer-wise learning-rate decay: layer i of L gets lr·d^(L+1−i), embeddings d^(L+1), head 1),
# TF_AVG=K (after training, average the last 2..K checkpoints and log validation and test of each average; set
# runtime.keep_checkpoints=K), TF_HEADWARM=N (body gradients zeroed for the first N training rows: a head warm-up).
# Variants measured (ROWS 2000, seeds 42 43 44):
#   base   "TF_AVG=5"               "runtime.keep_checkpoints=5"
#   llrd8  "TF_AVG=5 TF_LLRD=0.8"   "runtime.keep_checkpoints=5"
#   llrd9  "TF_AVG=5 TF_LLRD=0.9"   "runtime.keep_checkpoints=5"
#   ep10   "TF_AVG=2"               "train.epochs=10"
#   hw     "TF_AVG=2 TF_HEADWARM=1900" "runtime.levers=all,-embedding_rows"   (the hook needs dense embedding grads)
# Then: python benchmarks/probes/small_data/summarize.py /tmp/pr/*.jsonl
set -e
tree=$1; out=$2; tag=$3; rows=$4; envs=$5; sets=$6; shift 6
mkdir -p "$out"
cd "$tree"
for s in "$@"; do
  args=(--train-rows "$rows" --tag "$tag-seed$s" --allow-dirty --out "$out/$rows$tag-seed$s.json" --set train.seed="$s"
        --set runtime.progress=false)
  for x in $sets; do args+=(--set "$x"); done
  rm -f "$out/$rows$tag-seed$s.jsonl"
  env $envs TF_PROBE="$out/$rows$tag-seed$s.jsonl" PYTHONPATH="$tree/src" HF_HUB_OFFLINE=1 \
    python -m benchmarks.sst2_defaults "${args[@]}" > "$out/$rows$tag-seed$s.log" 2>&1
done
