#!/usr/bin/env bash
# The training runs of this project, like the original workflow's runs script:
#   1. `ftk prepare` LFW once (MTCNN on all 13,233 images: the slow step, cached under ~/.cache/ftk),
#   2. `ftk train` on each config named on the command line (default: the smoke run).
# Usage (from the repository root):
#   train/runs.sh                                   # tiny_smoke
#   train/runs.sh lfw_leakfree_inception lfw_leakfree_mobilefacenet
#   LFW=/data/lfw FTK_TRAIN_ARGS="--device cuda" train/runs.sh lfw_inception_scratch
# Multi-GPU: TORCHRUN_NPROC=4 train/runs.sh lfw_leakfree_inception   (runs `torchrun --nproc_per_node 4 ...`)
set -euo pipefail
cd "$(dirname "$0")/.."
FTK=${FTK:-ftk}
[ -x .venv/bin/ftk ] && [ "$FTK" = ftk ] && FTK=.venv/bin/ftk
LFW=${LFW:-../shared/data/lfw}
FACES=runs/data/lfw_faces.csv   # the configs read this path (relative to train/configs/)

if [ ! -f "$FACES" ]; then
  # >= 5 faces per person keeps the identities that can train a classifier; 80/20 train/val, no test split
  # (verification is measured on LFW pairs instead).
  "$FTK" prepare "$LFW/lfw-deepfunneled" --out "$FACES" --min-images-per-person 5 --split 0.8,0.2
fi

configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(tiny_smoke)
for name in "${configs[@]}"; do
  config=train/configs/${name%.yaml}.yaml
  echo "== ftk train --config $config"
  if [ -n "${TORCHRUN_NPROC:-}" ]; then
    python -m torch.distributed.run --nproc_per_node "$TORCHRUN_NPROC" -m toolkit.cli train --config "$config" \
      ${FTK_TRAIN_ARGS:-}
  else
    "$FTK" train --config "$config" ${FTK_TRAIN_ARGS:-}
  fi
  case "$name" in
    *leakfree*)
      if "$FTK" --help | grep -q evaluate && [ -f toolkit/commands/evaluate.py ]; then
        out=runs/${name%.yaml}
        "$FTK" evaluate "$out/best.pt" --pairs "$LFW/pairsDevTest.txt" --data "$LFW/lfw-deepfunneled" \
          --out "$out/eval_devtest" || echo "evaluation failed (see above)"
      fi ;;
  esac
done
