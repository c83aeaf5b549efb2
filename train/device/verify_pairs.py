"""Verification accuracy of an ftk checkpoint on an LFW pairs file, from a faces CSV covering the pair images.

A stand-alone helper for machines without the full toolkit setup (the GPU device): crops each pair image per the
checkpoint's spec from the CSV's detections, embeds with the exported wrapper (EmbeddingModel), scores pairs by
cosine and reports toolkit.metrics' 10-fold accuracy, AUC, EER and TAR@FAR as one JSON line. Pairs whose image has
no detection are counted as failures (scored -1), so a missing face never inflates the accuracy. `ftk evaluate`
is the full command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--csv", type=Path, default=None, help="faces CSV whose image_path values are name/name_NNNN.jpg")
    parser.add_argument("--image-root", type=Path, default=None, help="the LFW image folder (name/name_NNNN.jpg)")
    parser.add_argument("--detect", action="store_true", help="run MTCNN on the pair images instead of reading --csv")
    parser.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu")
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from toolkit.checkpoint import load_checkpoint
    from toolkit.data.crop import crop_face
    from toolkit.data.dataset import image_root_for, read_faces_csv
    from toolkit.data.pairs import read_pairs
    from toolkit.metrics import verification_metrics
    from toolkit.models.face_model import embedding_model_from

    ckpt = load_checkpoint(args.checkpoint)
    spec = ckpt.meta.spec
    pairs = read_pairs(args.pairs)
    if args.detect:
        from toolkit.data.detect import FaceDetector, pick_face

        root = args.image_root
        rels = pairs.image_paths()
        found = FaceDetector(device=args.device).detect_files([root / r for r in rels], progress=False)
        records = {}
        for rel, dets in zip(rels, found):
            if isinstance(dets, str) or not dets:
                continue
            with Image.open(root / rel) as im:
                face = pick_face(dets, im.size, "center")
            records[rel] = face
    else:
        records = {r.image_path: r for r in read_faces_csv(args.csv)}
        root = args.image_root or image_root_for(args.csv)
    wanted = [p for p in pairs.image_paths() if p in records]
    crops = []
    for rel in wanted:
        r = records[rel]
        with Image.open(root / rel) as im:
            box = r.box if hasattr(r, "box") else r.bbox
            crops.append(crop_face(im.convert("RGB"), spec, box, r.landmarks))
    model = embedding_model_from(ckpt.model).to(args.device)
    embeddings = {}
    with torch.no_grad():
        for i in range(0, len(crops), 256):
            batch = torch.from_numpy(np.stack(crops[i:i + 256]).astype(np.float32)).to(args.device)
            for rel, e in zip(wanted[i:i + 256], model(batch).cpu().numpy()):
                embeddings[rel] = e
    scores, missing = [], 0
    for p in pairs.pairs:
        if p.left in embeddings and p.right in embeddings:
            scores.append(float(embeddings[p.left] @ embeddings[p.right]))
        else:
            missing += 1
            scores.append(-1.0)
    m = verification_metrics(np.asarray(scores), pairs.same, pairs.folds)
    print(json.dumps({
        "checkpoint": str(args.checkpoint), "pairs": args.pairs.name, "n_pairs": m.n_pairs, "missing_pairs": missing,
        "accuracy_mean": round(m.accuracy_mean, 4), "accuracy_std": round(m.accuracy_std, 4),
        "auc": round(m.auc, 4), "eer": round(m.eer, 4),
        "tar_at_far": {str(fp.far_target): round(fp.tar, 4) for fp in m.far_points},
        "same_mean": round(m.same_mean, 4), "different_mean": round(m.different_mean, 4),
    }), flush=True)


if __name__ == "__main__":
    main()
