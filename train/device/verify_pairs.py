"""Verification accuracy of an ftk checkpoint on an LFW pairs file, as one JSON line (for the GPU machine).

The same path as `ftk evaluate` (toolkit.evaluate.verify_pairs -> toolkit.data.faces): MTCNN and the model on
--device, the face nearest the image centre, the checkpoint's crop, the fallback missing-face policy (an image with
no detected face is cropped at the median face position and counted), 10-fold accuracy, AUC, EER and TAR@FAR.
It writes no report and needs no click: a stand-alone entry for machines without the full CLI set-up.
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
    parser.add_argument("--image-root", type=Path, default=None, help="the LFW image folder (name/name_NNNN.jpg)")
    parser.add_argument("--detect", action="store_true", help="accepted for old command lines: faces are always "
                                                              "detected with MTCNN, as ftk evaluate does")
    parser.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu")
    args = parser.parse_args()

    from toolkit.checkpoint import load_checkpoint
    from toolkit.data.detect import FaceDetector
    from toolkit.embedders import TorchEmbedder
    from toolkit.evaluate import verify_pairs

    embedder = TorchEmbedder.from_checkpoint(load_checkpoint(args.checkpoint), device=args.device, batch_size=256)
    result, _, _ = verify_pairs(embedder, args.pairs, args.image_root, detector=FaceDetector(device=args.device),
                                batch_size=256, progress=False)
    print(json.dumps({
        "checkpoint": str(args.checkpoint), "pairs": args.pairs.name, "n_pairs": result.n_pairs,
        "images_without_face": result.n_center_crop_fallbacks,
        "accuracy_mean": round(result.accuracy_mean, 4), "accuracy_std": round(result.accuracy_std, 4),
        "auc": round(result.auc, 4), "eer": round(result.eer, 4),
        "tar_at_far": {k: round(v, 4) for k, v in result.tar_at_far.items()},
        "same_mean": round(result.same_mean, 4), "different_mean": round(result.different_mean, 4),
    }), flush=True)


if __name__ == "__main__":
    main()
