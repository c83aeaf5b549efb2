"""Real face crops for calibration, parity, evaluation: from an image folder (MTCNN) or a faces CSV."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from toolkit.data.crop import crop_face
from toolkit.data.dataset import image_root_for, read_faces_csv
from toolkit.data.detect import FaceDetector, list_images, pick_face
from toolkit.errors import InputError, NoFacesError
from toolkit.spec import ModelSpec

log = logging.getLogger(__name__)


@dataclass
class FaceCrops:
    images: np.ndarray  # uint8 [N, S, S, 3] RGB
    paths: list[str]
    rejects: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def __len__(self) -> int:
        return len(self.paths)


def spread_sample(paths: list[Path], limit: int | None, seed: int = 0) -> list[Path]:
    """Up to ``limit`` paths, seeded, spread across identity folders (round-robin) rather than the first few."""
    if limit is None or len(paths) <= limit:
        return list(paths)
    rng = random.Random(seed)
    groups: dict[Path, list[Path]] = {}
    for p in paths:
        groups.setdefault(p.parent, []).append(p)
    order = list(groups.values())
    rng.shuffle(order)
    for g in order:
        rng.shuffle(g)
    picked: list[Path] = []
    depth = 0
    while len(picked) < limit:
        added = False
        for g in order:
            if depth < len(g):
                picked.append(g[depth])
                added = True
                if len(picked) == limit:
                    break
        if not added:
            break
        depth += 1
    return sorted(picked)


def crops_from_files(paths: list[Path], spec: ModelSpec, detector: FaceDetector | None = None,
                     progress: bool = True, strategy: str = "confidence") -> FaceCrops:
    detector = detector or FaceDetector()
    found = detector.detect_files(paths, progress=progress)
    images, kept, rejects = [], [], []
    for path, dets in zip(paths, found):
        if isinstance(dets, str):
            rejects.append((str(path), dets))
            continue
        with Image.open(path) as im:
            im = im.convert("RGB")
            face = pick_face(dets, im.size, strategy)
            if face is None:
                rejects.append((str(path), "no face detected"))
                continue
            images.append(crop_face(im, spec, face.box, face.landmarks))
            kept.append(str(path))
    arr = np.stack(images) if images else np.zeros((0, spec.input_size, spec.input_size, 3), np.uint8)
    return FaceCrops(arr, kept, rejects)


def load_face_crops(source: str | Path, spec: ModelSpec, limit: int | None = None, seed: int = 0,
                    split: str | None = None, progress: bool = True, detector: FaceDetector | None = None,
                    min_faces: int = 1) -> FaceCrops:
    """Face crops for ``spec`` from an image folder (detected with MTCNN) or a faces CSV (its boxes/landmarks).

    Raises :class:`NoFacesError` when fewer than ``min_faces`` usable crops are found.
    """
    source = Path(source)
    if not source.exists():
        raise InputError(f"face source not found: {source}", hint="give an image folder or a faces CSV")
    if source.is_file() and source.suffix.lower() == ".csv":
        crops = _crops_from_csv(source, spec, limit, seed, split, progress)
    elif source.is_dir():
        paths = spread_sample(list_images(source), limit, seed)
        if not paths:
            raise NoFacesError(f"no images (.jpg/.png) found under {source}")
        crops = crops_from_files(paths, spec, detector, progress)
    else:
        raise InputError(f"{source} is neither an image folder nor a .csv of faces")
    if len(crops) < min_faces:
        reasons = "; ".join(f"{Path(p).name}: {r}" for p, r in crops.rejects[:3])
        raise NoFacesError(
            f"found {len(crops)} usable face crops in {source}, need at least {min_faces}"
            + (f" (e.g. {reasons})" if reasons else ""),
            hint="point to a folder of photos with visible faces",
        )
    log.info("loaded %d face crops from %s (%d rejected)", len(crops), source, len(crops.rejects))
    return crops


def _crops_from_csv(csv_path: Path, spec: ModelSpec, limit: int | None, seed: int, split: str | None,
                    progress: bool) -> FaceCrops:
    records = read_faces_csv(csv_path)
    if split is not None:
        records = [r for r in records if r.split_type == split]
    if limit is not None and len(records) > limit:
        records = sorted(random.Random(seed).sample(records, limit), key=lambda r: r.image_path)
    root = image_root_for(csv_path)
    images, kept, rejects = [], [], []
    iterator = records
    if progress and len(records) > 200:
        from tqdm import tqdm

        iterator = tqdm(records, desc="cropping faces", unit="img")
    for r in iterator:
        path = root / r.image_path
        try:
            with Image.open(path) as im:
                images.append(crop_face(im.convert("RGB"), spec, r.bbox, r.landmarks))
            kept.append(str(path))
        except (OSError, InputError) as exc:
            rejects.append((str(path), str(exc)))
    arr = np.stack(images) if images else np.zeros((0, spec.input_size, spec.input_size, 3), np.uint8)
    return FaceCrops(arr, kept, rejects)
