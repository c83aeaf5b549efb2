"""Training data: the faces CSV's train/val records (minus the identities of LFW pairs files), cropped once per the
model's spec and cached under the run folder."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from toolkit.data.dataset import FaceRecord, image_root_for, read_faces_csv
from toolkit.data.faces import crop_records
from toolkit.data.pairs import read_pairs
from toolkit.errors import InputError, NoFacesError
from toolkit.io import atomic_path, check_free_space, sha256_file, sha256_text
from toolkit.spec import ModelSpec
from toolkit.train.config import TrainConfig
log = logging.getLogger("toolkit.train")  # one logger for the stage: log lines keep the name they always had


def identities_in_pairs(path: str | Path) -> set[str]:
    """Every identity named in an LFW pairs file (the one parser: :func:`toolkit.data.pairs.read_pairs`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pairs file not found: {path}", hint="exclude_identities_from must name an LFW pairs file")
    return read_pairs(path).identities()


@dataclass
class TrainData:
    train_images: np.ndarray  # uint8 [N, S, S, 3]
    train_labels: np.ndarray  # int64 [N]
    val_images: np.ndarray
    val_labels: np.ndarray
    class_names: list[str]
    excluded_identities: int = 0
    rejects: list[tuple[str, str]] = field(default_factory=list)


def select_records(config: TrainConfig) -> tuple[list["FaceRecord"], list["FaceRecord"], list[str], int]:
    """Train and val records after identity exclusion and the per-person filters; labels re-indexed 0..C-1.

    Faces per person are counted over every row of the CSV, as ``ftk prepare --min-images-per-person`` counts them
    (before its split): a person prepare kept with 20 faces is not dropped here for having 17 of them in train + val.
    Who is left out, and why, is logged (:func:`dropped_people`)."""
    import random

    d = config.data
    records = read_faces_csv(d.faces_csv)
    if not records:
        raise NoFacesError(f"{d.faces_csv} has no faces", hint="run `ftk prepare` on a folder of photos first")
    excluded: set[str] = set()
    pairs_files = d.exclude_identities_from
    if pairs_files is not None:
        for p in pairs_files if isinstance(pairs_files, list) else [pairs_files]:
            excluded |= identities_in_pairs(p)
    present = {r.person_name for r in records}
    dropped = dropped_people(records, excluded, d.min_images_per_person, d.train_split)
    _log_dropped(dropped)
    train = [r for r in records if r.split_type == d.train_split and r.person_name not in dropped]
    class_names = sorted({r.person_name for r in train})
    if len(class_names) < 2:
        raise NoFacesError(
            f"{d.faces_csv}: {len(class_names)} identities left for training (split {d.train_split!r}, "
            f">= {d.min_images_per_person} faces each, {len(present & excluded)} excluded by pairs files); need >= 2",
            hint="lower data.min_images_per_person or use a folder with more people",
        )
    if d.max_images_per_person is not None:
        rng = random.Random(config.seed)
        by_person: dict[str, list] = {}
        for r in train:
            by_person.setdefault(r.person_name, []).append(r)
        train = sorted((r for rs in by_person.values()
                        for r in (rng.sample(rs, d.max_images_per_person) if len(rs) > d.max_images_per_person else rs)),
                       key=lambda r: r.image_path)
    label_of = {name: i for i, name in enumerate(class_names)}
    val = [r for r in records if r.split_type == d.val_split and r.person_name in label_of]
    train = [replace(r, label=label_of[r.person_name]) for r in train]
    val = [replace(r, label=label_of[r.person_name]) for r in val]
    return train, val, class_names, len(present & excluded)


def dropped_people(records: list["FaceRecord"], excluded: set[str], min_images: int,
                   train_split: str = "train") -> dict[str, str]:
    """Person -> why they are not trained on: named in a pairs file, fewer faces in the CSV (all splits, as
    prepare counts) than ``min_images``, or no row in the train split (prepare's identity hold-out)."""
    faces = Counter(r.person_name for r in records)
    in_train = {r.person_name for r in records if r.split_type == train_split}
    dropped = {}
    for name in sorted(faces):
        if name in excluded:
            dropped[name] = "named in an exclude_identities_from pairs file"
        elif faces[name] < min_images:
            dropped[name] = f"fewer than data.min_images_per_person = {min_images} faces in the CSV"
        elif name not in in_train:
            dropped[name] = f"no {train_split!r} rows (held out by ftk prepare)"
    return dropped


def _log_dropped(dropped: dict[str, str]) -> None:
    """One line per reason, naming the people it drops (the first ten)."""
    by_reason: dict[str, list[str]] = {}
    for name, why in dropped.items():
        by_reason.setdefault(why, []).append(name)
    for why, names in by_reason.items():
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        log.info("not trained on %d identities, %s: %s", len(names), why, shown)


def load_train_data(config: TrainConfig, spec: "ModelSpec", run_dir: Path, progress: bool = True,
                    build_cache: bool = True) -> TrainData:
    """Select, crop (or read the crop cache) and return the training and validation faces."""
    train, val, class_names, excluded = select_records(config)
    root = Path(config.data.image_root) if config.data.image_root else image_root_for(config.data.faces_csv)
    key = sha256_text("\n".join([
        sha256_file(config.data.faces_csv), str(root), repr(sorted(spec.to_dict().items())),
        *(f"{r.split_type},{r.image_path},{r.label}" for r in train + val),
    ]))[:16]
    cache = run_dir / "cache" / f"crops-{key}.npz"
    if config.data.cache_crops and cache.is_file():
        with np.load(cache) as z:
            log.info("read %d cached face crops from %s", len(z["train_labels"]) + len(z["val_labels"]), cache)
            return TrainData(z["train_images"], z["train_labels"], z["val_images"], z["val_labels"], class_names,
                             excluded)
    if not build_cache and config.data.cache_crops:
        raise InputError(f"crop cache {cache} is missing")  # only DDP followers ask, after rank 0 wrote it
    if build_cache:
        check_free_space(run_dir, _run_bytes(config, spec, len(class_names), len(train) + len(val)),
                         f"the run ({len(train) + len(val)} cached face crops and the checkpoints)")

    workers = config.num_workers or os.cpu_count() or 1
    train_images, train_labels, rejects = crop_records(train, root, spec, workers, progress, "cropping train faces")
    val_images, val_labels, val_rejects = crop_records(val, root, spec, workers, progress, "cropping val faces")
    rejects += val_rejects
    if rejects:
        log.warning("%d of %d faces could not be cropped (e.g. %s: %s); they are left out", len(rejects),
                    len(train) + len(val), *rejects[0])
    if len(train_images) < 2:
        raise NoFacesError(f"only {len(train_images)} training faces could be cropped from {config.data.faces_csv}",
                           hint=f"check the image root {root} (data.image_root overrides labels.json)")
    if config.data.cache_crops:
        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, train_images=train_images, train_labels=train_labels, val_images=val_images,
                     val_labels=val_labels)
    return TrainData(train_images, train_labels, val_images, val_labels, class_names, excluded, rejects)


def _run_bytes(config: TrainConfig, spec: "ModelSpec", num_classes: int, n_faces: int) -> int:
    """What a run writes at most: the crop cache, best.pt, last.pt with its optimizer state, and the temp copy of
    last.pt while it is replaced (parameters counted on the meta device: nothing is allocated)."""
    import torch

    from toolkit.models.face_model import FaceModel

    with torch.device("meta"):
        params = sum(p.numel() for p in FaceModel(spec, num_classes).parameters()) * 4
    optimizer_copies = 1 if config.optimizer == "sgd" else 2
    crops = n_faces * spec.input_size ** 2 * 3 if config.data.cache_crops else 0
    return crops + params * (1 + 2 * (1 + optimizer_copies)) + 2**20
