#!/usr/bin/env bash
# The training runs of this project, like the original workflow's runs script:
#   1. `ftk prepare` LFW once (MTCNN on all 13,233 images: the slow step, cached under ~/.cache/ftk),
#   2. `ftk train` on each config named on the command line (default: the smoke run), into runs/<config name>,
#   3. for the leak-free configs, `ftk evaluate` of its best.pt on LFW's pairsDevTest.txt.
# Usage (from anywhere):
#   train/runs.sh                                   # tiny_smoke
#   train/runs.sh lfw_leakfree_inception lfw_leakfree_mobilefacenet
#   train/runs.sh path/to/my_config.yaml            # a config outside train/configs/
#   LFW=/data/lfw FTK_TRAIN_ARGS="--device cuda" train/runs.sh lfw_inception_scratch
# Multi-GPU: TORCHRUN_NPROC=4 train/runs.sh lfw_leakfree_inception   (`python -m torch.distributed.run
#   --nproc_per_node 4`, with the venv's interpreter; only rank 0 prints the summary)
# Running it again (FTK_RUN, default resume):
#   resume     a run folder that holds last.pt is continued with --resume: an interrupted run picks up where it
#              stopped, a finished one returns at once with its results (a changed config is refused by ftk: then
#              use one of the next two);
#   new        a fresh folder runs/<config name>-<date-time> beside the old one;
#   overwrite  the old run folder is replaced (--overwrite).
# The interpreter: FTK_PYTHON, else the repository's .venv/bin/python (scripts/setup.sh makes it); never a bare
# `python`, which under torchrun outside an activated venv is the system one without torch.
# Other settings: LFW (the LFW folder, default ../shared/data/lfw), FTK_RUNS (run folders, default runs; the repo's
# configs read runs/data/lfw_faces.csv), FTK_FACES (the faces CSV prepare writes, default runs/data/lfw_faces.csv).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${FTK_PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  echo "error: no Python interpreter at $PY (run scripts/setup.sh, or set FTK_PYTHON to the venv's python)" >&2
  exit 2
fi
ftk() { "$PY" -m toolkit.cli "$@"; }
LFW=${LFW:-../shared/data/lfw}
RUNS=${FTK_RUNS:-runs}
FACES=${FTK_FACES:-runs/data/lfw_faces.csv}   # the repo's configs read runs/data/lfw_faces.csv
MODE=${FTK_RUN:-resume}
case "$MODE" in resume|new|overwrite) ;; *) echo "error: FTK_RUN must be resume, new or overwrite, got '$MODE'" >&2
  exit 2 ;; esac

if [ ! -f "$FACES" ]; then
  # >= 5 faces per person keeps the identities that can train a classifier; 80/20 train/val, no test split
  # (verification is measured on LFW pairs instead).
  ftk prepare "$LFW/lfw-deepfunneled" --out "$FACES" --min-images-per-person 5 --split 0.8,0.2
fi

configs=("$@")
[ ${#configs[@]} -eq 0 ] && configs=(tiny_smoke)
for arg in "${configs[@]}"; do
  if [ -f "$arg" ]; then config=$arg; else config=train/configs/${arg%.yaml}.yaml; fi
  name=$(basename "${config%.yaml}")
  out=$RUNS/$name
  flags=()
  case "$MODE" in
    resume) [ -f "$out/last.pt" ] && flags=(--resume) ;;
    new) [ -e "$out" ] && out=$RUNS/$name-$(date +%Y%m%d-%H%M%S) ;;
    overwrite) flags=(--overwrite) ;;
  esac
  echo "== ftk train --config $config --out $out ${flags[*]:-}"
  # shellcheck disable=SC2086  # FTK_TRAIN_ARGS is a list of flags
  if [ -n "${TORCHRUN_NPROC:-}" ]; then
    "$PY" -m torch.distributed.run --nproc_per_node "$TORCHRUN_NPROC" -m toolkit.cli train --config "$config" \
      --out "$out" "${flags[@]}" ${FTK_TRAIN_ARGS:-}
  else
    ftk train --config "$config" --out "$out" "${flags[@]}" ${FTK_TRAIN_ARGS:-}
  fi
  case "$name" in
    *leakfree*)
      ftk evaluate "$out/best.pt" --pairs "$LFW/pairsDevTest.txt" --data "$LFW/lfw-deepfunneled" \
        --out "$out/eval_devtest" --overwrite || echo "evaluation failed (see above)" ;;
  esac
done
