"""Training throughput (images/s) of `ftk train`'s own loop for a backbone, batch size and precision.

Runs ``toolkit.train.train`` for 2 short epochs (``max_steps_per_epoch`` steps each) on a faces CSV (default:
synthetic images made in a temp folder, enough for the steps) and prints the second epoch's images/s as one JSON
line: the first epoch pays for warm-up (cuDNN autotuning, allocator growth). The figure covers augmentation +
forward + backward + optimizer step, not cropping or validation.

    python train/bench_throughput.py --backbone inception_resnet_v1 --batch-size 32 --steps 5 --device cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic_csv(folder: Path, n_images: int, n_classes: int = 8) -> Path:
    import numpy as np
    from PIL import Image

    from toolkit.data.dataset import FaceRecord, write_faces_csv

    rng = np.random.default_rng(0)
    classes = [f"person_{c}" for c in range(n_classes)]
    records = []
    for k in range(n_images):
        c = k % n_classes
        img = rng.integers(0, 256, (12, 12, 3)).astype(np.uint8).repeat(8, 0).repeat(8, 1)
        path = folder / classes[c] / f"{classes[c]}_{k:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)
        records.append(FaceRecord(f"{classes[c]}/{path.name}", classes[c], (0, 0, 96, 96), "train", c))
    write_faces_csv(folder / "faces.csv", records, folder, classes)
    return folder / "faces.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="inception_resnet_v1")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="steps per epoch (2 epochs run)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"])
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--csv", type=Path, default=None, help="a faces CSV to read (default: synthetic images)")
    parser.add_argument("--image-root", type=Path, default=None)
    args = parser.parse_args()

    from toolkit.train import DataConfig, TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv_path = args.csv or synthetic_csv(tmp / "faces", args.batch_size * args.steps)
        config = TrainConfig(
            data=DataConfig(faces_csv=csv_path, image_root=args.image_root, min_images_per_person=1,
                            cache_crops=False),
            backbone=args.backbone, epochs=2, batch_size=args.batch_size, max_steps_per_epoch=args.steps,
            device=args.device, amp=args.amp, channels_last=not args.no_channels_last, compile=args.compile,
            out_dir=tmp / "run", log_interval=10**6,
        )
        t0 = time.perf_counter()
        result = train(config, progress=False)
        import csv

        with open(result.results_csv, newline="") as fh:
            rows = list(csv.DictReader(fh))
    print(json.dumps({
        "backbone": args.backbone, "batch_size": args.batch_size, "steps": args.steps, "device": result.device,
        "amp": result.amp, "channels_last": not args.no_channels_last, "compile": args.compile,
        "images_per_s_epoch1": float(rows[0]["images_per_s"]), "images_per_s": float(rows[-1]["images_per_s"]),
        "wall_s": round(time.perf_counter() - t0, 1),
    }), flush=True)


if __name__ == "__main__":
    main()
