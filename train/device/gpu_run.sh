#!/usr/bin/env bash
# One prepared run on the GPU device (see docs/train.md): throughput of InceptionResnetV1 training with and without
# AMP, then a leak-free from-scratch training run stopped by SIGINT at a time limit (the Ctrl-C path), then
# verification on pairsDevTest. Needs carry/whl (facenet-pytorch wheel) and carry/device (crops + configs).
set -u
export PYTHONUNBUFFERED=1 FTK_CACHE_DIR=/tmp/ftk-cache OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site carry/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())"
for args in "--amp off --batch-size 32" "--amp bf16 --batch-size 32" "--amp bf16 --batch-size 128" \
            "--amp fp16 --batch-size 128" "--amp off --batch-size 128"; do
  python3 train/bench_throughput.py --backbone inception_resnet_v1 --device cuda --steps 15 $args \
    2>>"$OUT/bench.err" | tee -a "$OUT/bench.jsonl"
done
speed=$(python3 -c "import json; r=[json.loads(l) for l in open('$OUT/bench.jsonl')]; print(int(max(x['images_per_s'] for x in r if x['amp']=='bf16' and x['batch_size']==128)))" 2>/dev/null || echo 500)
n_train=$(grep -c ',train,' carry/device/leakfree/faces.csv)
epochs=$(python3 -c "print(max(5, min(80, int(${TRAIN_S:-180} * 0.55 * $speed / $n_train))))")
echo "bf16 bs128 speed $speed img/s, $n_train train faces -> $epochs epochs"
sed -i "s/^epochs: .*/epochs: $epochs/; s/T_0: [0-9]*/T_0: $epochs/" carry/device/leakfree_inception_gpu.yaml
t0=$(date +%s)
timeout -s INT "${TRAIN_S:-180}" python3 -m toolkit.cli train --config carry/device/leakfree_inception_gpu.yaml \
  --quiet --json >"$OUT/train.json" 2>"$OUT/train.log"
echo "train rc=$? in $(( $(date +%s) - t0 )) s"; tail -3 "$OUT/train.log"
run=carry/device/run
cp "$run/results.csv" "$run/curves.png" "$OUT/" 2>/dev/null
python3 - <<'PY'
import csv; rows = list(csv.DictReader(open("carry/device/run/results.csv")))
for r in rows[:: max(1, len(rows) // 10)] + rows[-1:]: print({k: r[k] for k in ("epoch", "train_loss", "train_acc", "val_acc", "lr", "images_per_s")})
PY
for ck in best last; do
  python3 train/device/verify_pairs.py "$run/$ck.pt" --pairs carry/device/devtest/pairsDevTest.txt \
    --image-root carry/device/devtest/images --detect 2>>"$OUT/verify.err" | tee -a "$OUT/verify.jsonl"
done
