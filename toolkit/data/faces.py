"""One path from photos to model inputs to embeddings, used by every command that needs faces.

    image files --MTCNN (cached per file)--> detections --pick--> one face per image --crop (spec)--> crops
    faces CSV   --its boxes and landmarks---------------------------------------------crop (spec)--> crops
    crops --Embedder.embed (L2-normalised there, once)--> embeddings          (:func:`embed_crops`, cached)

Evaluate, parity, export's calibration, init-checkpoint, training (its CSV), compare, match, the golden reference
sets and the GPU-machine script all crop here, so a face is the same input to the model whichever command made it.

Face-picking rule (one, ``pick``): ``"center"`` (default) takes the detected face whose box centre is nearest the
image centre, as LFW and enrolment photos are framed on their person; ``"confidence"`` takes the detector's most
confident face. Every command that detects faces has ``--pick``.

Missing-face policy (one, ``missing``), reported in :class:`FaceCrops`:

- ``"skip"`` (default): an image where MTCNN finds no face is left out and listed in ``rejects`` with the reason;
- ``"fallback"``: it is cropped at the median face position of the other images of the set (LFW images are centred)
  and listed in ``fallback``. Verification uses it: the LFW protocol scores every pair, so no image may drop out.

An unreadable image is a reject under either policy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import numpy as np
from PIL import Image

from toolkit.constants import DEFAULT_PICK, PICK_RULES
from toolkit.data.crop import center_crop, crop_face
from toolkit.data.dataset import FaceRecord, image_root_for, read_faces_csv
from toolkit.data.detect import Detection, FaceDetector, cache_dir, list_images, pick_face
from toolkit.data.images import load_rgb
from toolkit.embedders import Embedder
from toolkit.errors import InputError, NoFacesError
from toolkit.io import atomic_path, sha256_text
from toolkit.spec import ModelSpec
log = logging.getLogger(__name__)

MISSING_POLICIES = ("skip", "fallback")
CACHE_VERSION = 2
# crop(image, box, landmarks) -> uint8 [S, S, 3]: the spec's crop, or one the caller hands in.
Cropper = Callable[[Image.Image, Sequence[float], Sequence[Sequence[float]]], np.ndarray]


@dataclass(frozen=True)
class CropOverride:
    """Crops made another way than the spec's, handed down by the caller (``ftk evaluate --simulate-app``: the
    Android app's, :mod:`toolkit.app_sim`), so this module needs to know nothing about where they come from.

    ``label`` and ``fingerprint`` go into the crop cache's key: a new fingerprint (e.g. of the Kotlin template the
    crops are computed by) means new crops. ``open()`` gives a context manager yielding the :data:`Cropper`.
    """

    label: str
    fingerprint: str
    open: Callable[[], ContextManager[Cropper]]


@dataclass
class FaceCrops:
    """Crops in ``paths`` order, and what happened to every image that is not a plain detected face."""

    images: np.ndarray  # uint8 [N, S, S, 3] RGB
    paths: list[str]  # one per row of images
    rejects: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of images left out
    fallback: list[str] = field(default_factory=list)  # images cropped at the median face position (no face found)
    faces: list[Detection | None] = field(default_factory=list)  # the picked face per row (None: fallback / CSV)
    faces_found: list[int] = field(default_factory=list)  # detections per row (0: a fallback, -1: not known)
    key: str | None = None  # identifies the image files and the crop settings (keys the embedding cache)

    def __len__(self) -> int:
        return len(self.paths)

    def summary(self) -> str:
        """One line for logs and reports: how many faces, and what the missing-face policy did."""
        parts = [f"{len(self)} face crops"]
        if self.fallback:
            parts.append(f"{len(self.fallback)} without a detected face cropped at the median face position")
        if self.rejects:
            parts.append(f"{len(self.rejects)} images left out (e.g. {Path(self.rejects[0][0]).name}: "
                         f"{self.rejects[0][1]})")
        return ", ".join(parts)


def check_pick(pick: str) -> None:
    if pick not in PICK_RULES:
        raise InputError(f"unknown face-picking rule {pick!r}", hint=f"--pick is one of {', '.join(PICK_RULES)}")


def _empty(spec: ModelSpec) -> np.ndarray:
    return np.zeros((0, spec.input_size, spec.input_size, 3), np.uint8)


# --- photos: MTCNN, one face per image --------------------------------------------------------------------------------
def crop_images(paths: Sequence[str | Path], spec: ModelSpec, *, detector: FaceDetector | None = None,
                pick: str = DEFAULT_PICK, missing: str = "skip", progress: bool = True,
                crop: Cropper | None = None) -> FaceCrops:
    """One crop per image (the ``pick`` face, cropped as ``spec`` says, or by ``crop``); see the module docstring
    for the missing-face policy."""
    check_pick(pick)
    if missing not in MISSING_POLICIES:
        raise InputError(f"unknown missing-face policy {missing!r}", hint=f"one of {', '.join(MISSING_POLICIES)}")
    paths = [Path(p) for p in paths]
    crop = crop or (lambda image, box, landmarks: crop_face(image, spec, box, landmarks))
    detections = (detector or FaceDetector()).detect_files(paths, progress=progress, desc="detecting faces")
    rows: dict[int, tuple[np.ndarray, Detection | None, int]] = {}
    rejects: list[tuple[str, str]] = []
    no_face: list[int] = []
    picked: list[tuple[Detection, tuple[int, int]]] = []
    for i, (path, dets) in enumerate(zip(_bar(paths, progress, "cropping faces"), detections)):
        if isinstance(dets, str):
            rejects.append((str(path), dets))
            continue
        try:
            im = load_rgb(path)
            face = pick_face(dets, im.size, pick)
            if face is None:
                no_face.append(i)
                continue
            rows[i] = (crop(im, face.box, face.landmarks), face, len(dets))
            picked.append((face, im.size))
        except (OSError, InputError, ValueError) as exc:  # changed on disk since detection, or a degenerate box
            rejects.append((str(path), f"cannot crop: {exc}"))
    fallback: list[str] = []
    if missing == "fallback" and no_face:
        median = _median_face(picked)
        for i in no_face:
            rows[i] = (_fallback_crop(paths[i], spec, median, crop), None, 0)
            fallback.append(str(paths[i]))
        log.info("no face detected in %d of %d images; cropped at the median face position", len(no_face), len(paths))
    else:
        rejects += [(str(paths[i]), "no face detected") for i in no_face]
    order = sorted(rows)
    images = np.stack([rows[i][0] for i in order]) if order else _empty(spec)
    for path, why in rejects:
        log.debug("%s: %s", path, why)  # the result lists them; callers decide how loud to be
    return FaceCrops(images, [str(paths[i]) for i in order], sorted(rejects), fallback,
                     [rows[i][1] for i in order], [rows[i][2] for i in order])


def _bar(items: Sequence, progress: bool, desc: str):
    if progress and len(items) > 100:
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="img")
    return items


def _median_face(picked: list[tuple[Detection, tuple[int, int]]]) -> tuple[np.ndarray, np.ndarray] | None:
    """Median box and landmarks of the detected faces, relative to image width/height."""
    if not picked:
        return None
    boxes = [np.asarray(face.box, float) / [w, h, w, h] for face, (w, h) in picked]
    marks = [np.asarray(face.landmarks, float) / [w, h] for face, (w, h) in picked]
    return np.median(np.stack(boxes), axis=0), np.median(np.stack(marks), axis=0)


def _fallback_crop(path: Path, spec: ModelSpec, median, crop: Cropper) -> np.ndarray:
    im = load_rgb(path)
    if median is None:  # no face anywhere in the set: the image centre
        return center_crop(im, spec.input_size)
    w, h = im.size
    box, marks = median
    return crop(im, tuple(box * [w, h, w, h]), [tuple(p) for p in marks * [w, h]])


# --- a faces CSV: its boxes and landmarks -----------------------------------------------------------------------------
def crop_records(records: list["FaceRecord"], image_root: Path, spec: ModelSpec, workers: int = 1,
                 progress: bool = False, desc: str = "cropping faces"
                 ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Crop each record's face per the spec; (crops, labels, [(image_path, why)] of rows left out). Threads: PIL
    decodes and resizes outside the GIL."""
    from concurrent.futures import ThreadPoolExecutor

    def one(r: "FaceRecord"):
        try:
            return crop_face(load_rgb(image_root / r.image_path), spec, r.bbox, r.landmarks), None
        except (OSError, InputError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    images, labels, rejects = [], [], []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(one, records)
        if progress and len(records) > 100:
            from tqdm import tqdm

            results = tqdm(results, total=len(records), desc=desc, unit="img", leave=False)
        for r, (face, error) in zip(records, results):
            if face is None:
                rejects.append((r.image_path, error))
            else:
                images.append(face)
                labels.append(r.label)
    arr = np.stack(images) if images else _empty(spec)
    return arr, np.asarray(labels, dtype=np.int64), rejects


# --- a face source: a photo folder or a faces CSV ---------------------------------------------------------------------
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


def load_face_crops(source: str | Path, spec: ModelSpec, limit: int | None = None, seed: int = 0,
                    split: str | None = None, progress: bool = True, detector: FaceDetector | None = None,
                    min_faces: int = 1, pick: str = DEFAULT_PICK) -> FaceCrops:
    """Face crops for ``spec`` from an image folder (MTCNN, ``pick`` rule) or a faces CSV (its boxes/landmarks);
    images without a face are skipped and listed.

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
        crops = crop_images(paths, spec, detector=detector, pick=pick, progress=progress)
    else:
        raise InputError(f"{source} is neither an image folder nor a .csv of faces")
    if len(crops) < min_faces:
        reasons = "; ".join(f"{Path(p).name}: {r}" for p, r in crops.rejects[:3])
        raise NoFacesError(
            f"found {len(crops)} usable face crops in {source}, need at least {min_faces}"
            + (f" (e.g. {reasons})" if reasons else ""),
            hint="point to a folder of photos with visible faces",
        )
    log.info("%s from %s", crops.summary(), source)
    return crops


def _crops_from_csv(csv_path: Path, spec: ModelSpec, limit: int | None, seed: int, split: str | None,
                    progress: bool) -> FaceCrops:
    records = read_faces_csv(csv_path)
    if split is not None:
        records = [r for r in records if r.split_type == split]
    if limit is not None and len(records) > limit:
        records = sorted(random.Random(seed).sample(records, limit), key=lambda r: r.image_path)
    root = image_root_for(csv_path)
    images, _, rejected = crop_records(records, root, spec, progress=progress)
    failed = {path for path, _ in rejected}
    kept = [str(root / r.image_path) for r in records if r.image_path not in failed]
    return FaceCrops(images, kept, [(str(root / p), why) for p, why in rejected],
                     faces=[None] * len(kept), faces_found=[1] * len(kept))


# --- cached crops and embeddings (evaluation re-runs the same image sets) ---------------------------------------------
def _crop_key(paths: Sequence[Path], spec: ModelSpec, pick: str, missing: str, detector: FaceDetector,
              override: CropOverride | None = None) -> str:
    parts = []
    for p in paths:
        st = p.stat()
        parts.append(f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}")
    settings = {"v": CACHE_VERSION, "crop": spec.crop, "size": spec.input_size, "margin": spec.box_margin,
                "pick": pick, "missing": missing, "detector": [detector.min_face_size, list(detector.thresholds)]}
    if override is not None:
        # Key names as before the override was handed in, so the crops cached then are still found.
        settings.update(simulate_app=override.label, template=override.fingerprint, channels=spec.channel_order)
    return sha256_text(json.dumps(settings, sort_keys=True) + "\n" + "\n".join(parts))


def _cache_file(kind: str, key: str) -> Path:
    return cache_dir() / kind / f"{key[:32]}.npz"


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {n: data[n] for n in data.files}
    except Exception as exc:  # noqa: BLE001 - a damaged cache entry is recomputed, never fatal
        log.warning("ignoring unreadable cache file %s: %s", path, exc)
        return None


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
    except OSError as exc:  # a read-only cache must not stop the evaluation
        log.warning("cannot write cache %s: %s", path, exc)


def cached_crops(paths: Sequence[str | Path], spec: ModelSpec, *, detector: FaceDetector | None = None,
                 pick: str = DEFAULT_PICK, missing: str = "fallback", progress: bool = True,
                 use_cache: bool = True, override: CropOverride | None = None) -> FaceCrops:
    """:func:`crop_images` for a fixed image set (e.g. a pairs file's), cached under ``$FTK_CACHE_DIR/crops``.

    ``override`` crops another way than the spec says (the caller's, e.g. as the Android app does). Under the
    ``fallback`` policy every path has a row, in order; under ``skip`` only the kept ones.
    """
    paths = [Path(p) for p in paths]
    detector = detector or FaceDetector()
    key = _crop_key(paths, spec, pick, missing, detector, override)
    cache_path = _cache_file("crops", key)
    cached = _load_npz(cache_path) if use_cache else None
    if cached is not None and {"images", "kept", "fallback"} <= set(cached):
        log.info("reusing %d cached face crops from %s", len(cached["images"]), cache_path)
        kept = [str(paths[i]) for i in cached["kept"]]
        rejected = sorted(set(map(str, paths)) - set(kept))
        # The crop cache keeps images, not detections: faces / faces_found are unknown (None / -1) on a hit.
        return FaceCrops(cached["images"], kept, [(p, "no face detected") for p in rejected],
                         [str(paths[i]) for i in cached["fallback"]], [None] * len(kept), [-1] * len(kept), key=key)
    with (override.open() if override is not None else contextlib.nullcontext(None)) as crop:
        crops = crop_images(paths, spec, detector=detector, pick=pick, missing=missing, progress=progress, crop=crop)
    crops.key = key
    unreadable = [r for r in crops.rejects if r[1] != "no face detected"]
    if use_cache and not unreadable:  # an unreadable file may be fixed: never cache around it
        index = {str(p): i for i, p in enumerate(paths)}
        _save_npz(cache_path, images=crops.images, kept=np.array([index[p] for p in crops.paths], np.int64),
                  fallback=np.array([index[p] for p in crops.fallback], np.int64))
    return crops


def embed_crops(embedder: "Embedder", faces: np.ndarray, batch_size: int = 64, progress: bool = True,
                cache_key: str | None = None) -> np.ndarray:
    """Embeddings of ``faces`` in batches (progress bar), cached by model sha256 + spec + ``cache_key``.

    ``Embedder.embed`` returns unit-length rows (the embedders normalise, once); a NaN/inf or non-unit result is an
    error here, not something quietly fixed.
    """
    cache_path = None
    if cache_key is not None:
        host = [getattr(embedder, "host_mean", None), getattr(embedder, "host_std", None)]
        ident = json.dumps({"model": embedder.model_sha256, "spec": embedder.spec.to_dict(), "crops": cache_key,
                            "host": [None if v is None else np.asarray(v).tolist() for v in host]}, sort_keys=True)
        cache_path = _cache_file("embeddings", sha256_text(ident))
        cached = _load_npz(cache_path)
        if cached is not None and cached.get("embeddings", np.empty(0)).shape == (len(faces), embedder.spec.embedding_dim):
            log.info("reusing cached embeddings %s", cache_path)
            return cached["embeddings"].astype(np.float32)
    chunks = range(0, len(faces), batch_size)
    if progress and len(faces) > batch_size:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=f"embedding ({embedder.name})", unit="batch")
    out = [np.asarray(embedder.embed(faces[s : s + batch_size]), np.float32) for s in chunks]
    emb = np.concatenate(out) if out else np.zeros((0, embedder.spec.embedding_dim), np.float32)
    check_embeddings(emb, embedder.name)
    if cache_path is not None:
        _save_npz(cache_path, embeddings=emb)
    return emb


def check_embeddings(emb: np.ndarray, name: str) -> None:
    if not np.isfinite(emb).all():
        raise InputError(f"{name} produced NaN/inf embeddings; the model is broken for these inputs")
    norms = np.linalg.norm(emb, axis=1)
    if len(emb) and np.abs(norms - 1).max() > 1e-3:
        raise InputError(f"{name} returned embeddings of length {norms.min():.3g}..{norms.max():.3g}, not 1",
                         hint="an Embedder's embed() must return L2-normalised rows (toolkit.embedders.l2_normalize)")

