"""``ftk match``: the app's 1:N matching on the host.

The app keeps every registered embedding (one or more per person), compares a new face with all of them and
accepts the best one when its cosine similarity reaches the threshold. Here the same rule runs over a gallery
enrolled from ``Person_Name/*.jpg``; top-k is reported per person (each person's best embedding), so the first
entry is exactly the app's answer.

Embeddings from different models are not comparable, so a gallery records the sha256 of the model that enrolled it
and is refused by any other model: the same re-enrolment the app needs whenever its model file changes.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolkit.compare import detect_and_crop, verdict
from toolkit.constants import DEFAULT_PICK
from toolkit.data.detect import FaceDetector, list_images
from toolkit.data.faces import check_embeddings, embed_crops
from toolkit.embedders import Embedder
from toolkit.errors import InputError, NoFacesError
from toolkit.io import atomic_path, check_outputs_free, parse_json
from toolkit.spec import ModelSpec
log = logging.getLogger(__name__)

GALLERY_FORMAT = "ftk.gallery/1"
GALLERY_KEYS = ("format", "embeddings", "person_index", "names", "paths", "model_sha256", "model_name", "spec_json",
                "failed_paths", "failed_reasons")


@dataclass
class Gallery:
    """Enrolled embeddings, grouped by person (rows of one person are contiguous, people in ``names`` order)."""

    embeddings: np.ndarray  # float32 [M, D], L2-normalised
    person_index: np.ndarray  # int32 [M]: row -> index into names, non-decreasing
    names: list[str]
    paths: list[str]  # source image of each row
    model_sha256: str
    model_name: str
    spec: ModelSpec
    failures: list[tuple[str, str]] = field(default_factory=list)  # images that gave no embedding, and why
    source: str = ""  # the folder or .npz it came from

    def __post_init__(self) -> None:
        self.embeddings = np.ascontiguousarray(self.embeddings, dtype=np.float32)
        self.person_index = np.asarray(self.person_index, dtype=np.int32)
        m = len(self.embeddings)
        if self.embeddings.ndim != 2 or len(self.person_index) != m or len(self.paths) != m:
            raise InputError(f"gallery {self.source or ''} is inconsistent: {self.embeddings.shape} embeddings, "
                             f"{len(self.person_index)} person indices, {len(self.paths)} paths")
        if m == 0:
            raise NoFacesError(f"gallery {self.source} holds no embeddings")
        if np.any(np.diff(self.person_index) < 0) or self.person_index[0] != 0 \
                or np.any(np.diff(self.person_index) > 1) or self.person_index[-1] != len(self.names) - 1:
            raise InputError(f"gallery {self.source} rows are not grouped by person (each of {len(self.names)} "
                             "people needs at least one row, in order)", hint="re-enrol it")
        self._check_unit_rows()

    def _check_unit_rows(self) -> None:
        """Every row finite and of length 1, as enrolment writes them: a scaled row would be "accepted" at any
        threshold (score 1000), a NaN row never."""
        finite = np.isfinite(self.embeddings).all(axis=1)
        if not finite.all():
            raise InputError(f"gallery {self.source} holds {int((~finite).sum())} embeddings with NaN or infinite "
                             f"values (e.g. row {int(np.argmin(finite))}, {self.paths[int(np.argmin(finite))]})",
                             hint="re-enrol it")
        norms = np.linalg.norm(self.embeddings.astype(np.float64), axis=1)
        worst = int(np.argmax(np.abs(norms - 1)))
        if abs(norms[worst] - 1) > 1e-3:
            raise InputError(f"gallery {self.source} holds embeddings that are not unit length (row {worst}, "
                             f"{self.paths[worst]}: length {norms[worst]:.6g})", hint="re-enrol it")

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def person_starts(self) -> np.ndarray:
        """First row of each person (for ``np.maximum.reduceat``)."""
        return np.flatnonzero(np.r_[True, np.diff(self.person_index) != 0])

    def count(self, person: int) -> int:
        return int(np.count_nonzero(self.person_index == person))


# --- enrolment ----------------------------------------------------------------------------------------------------
def enroll_gallery(source_dir: str | Path, embedder: Embedder, detector: "FaceDetector | None" = None,
                   progress: bool = True, pick: str = DEFAULT_PICK) -> Gallery:
    """Embed every face in ``source_dir/Person_Name/*.jpg``; each image stays its own row, as the app stores them."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise InputError(f"gallery folder not found: {source_dir}",
                         hint="pass a folder of Person_Name/*.jpg or a gallery .npz saved by --save-gallery")
    people = sorted(p for p in source_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    failures: list[tuple[str, str]] = [(str(p), "not inside a Person_Name folder; ignored")
                                       for p in list_images(source_dir) if p.parent == source_dir]
    paths, owners = [], []
    for person in people:
        for image in list_images(person):
            paths.append(image)
            owners.append(person.name)
    if not paths:
        raise NoFacesError(f"no images in person folders under {source_dir}",
                           hint="lay the gallery out as Person_Name/*.jpg (one or more photos per person)")
    owner_of = {str(p): o for p, o in zip(paths, owners)}
    crops, failed = detect_and_crop(paths, embedder.spec, detector, progress=progress, pick=pick)
    failures += failed
    if not crops:
        raise NoFacesError(f"no face detected in any of the {len(paths)} gallery images under {source_dir}")
    embeddings = embed_crops(embedder, np.stack([c.crop for c in crops]), progress=progress)
    names = sorted({owner_of[c.path] for c in crops})
    index_of = {n: i for i, n in enumerate(names)}
    person_index = np.array([index_of[owner_of[c.path]] for c in crops], np.int32)
    order = np.argsort(person_index, kind="stable")  # already grouped (paths are per person); keep it certain
    without_face = sorted(set(owners) - set(names))
    if without_face:
        log.warning("no usable face for %d people, left out of the gallery: %s", len(without_face),
                    ", ".join(without_face))
    return Gallery(embeddings[order], person_index[order], names, [crops[i].path for i in order],
                   embedder.model_sha256, embedder.name, embedder.spec, failures, source=str(source_dir))


def save_gallery(gallery: Gallery, path: str | Path, overwrite: bool = False) -> Path:
    """Write the gallery as a plain ``.npz`` (no pickle), atomically."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise InputError(f"gallery file must end in .npz, got {path.name}")
    check_outputs_free([path], overwrite)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: np.savez must not append ".npz"
        np.savez(
            fh,
            format=np.array(GALLERY_FORMAT),
            embeddings=gallery.embeddings,
            person_index=gallery.person_index,
            names=np.array(gallery.names, dtype=str),
            paths=np.array(gallery.paths, dtype=str),
            model_sha256=np.array(gallery.model_sha256),
            model_name=np.array(gallery.model_name),
            spec_json=np.array(json.dumps(gallery.spec.to_dict())),
            failed_paths=np.array([p for p, _ in gallery.failures], dtype=str),
            failed_reasons=np.array([r for _, r in gallery.failures], dtype=str),
        )
    return path


def load_gallery(path: str | Path) -> Gallery:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"gallery file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in GALLERY_KEYS if k not in data.files]
            if missing:
                raise InputError(f"{path} is not an ftk gallery (missing {', '.join(missing)})",
                                 hint="save one with `ftk match ... --gallery FOLDER --save-gallery OUT.npz`")
            fmt = str(data["format"])
            if fmt != GALLERY_FORMAT:
                raise InputError(f"{path} is gallery format {fmt!r}; this ftk reads {GALLERY_FORMAT!r}",
                                 hint="re-enrol the gallery")
            spec = ModelSpec.from_dict(parse_json(str(data["spec_json"]), f"{path}: spec_json"))
            gallery = Gallery(
                embeddings=data["embeddings"], person_index=data["person_index"],
                names=[str(v) for v in data["names"]], paths=[str(v) for v in data["paths"]],
                model_sha256=str(data["model_sha256"]), model_name=str(data["model_name"]), spec=spec,
                failures=list(zip((str(v) for v in data["failed_paths"]), (str(v) for v in data["failed_reasons"]))),
                source=str(path),
            )
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read gallery {path}: {type(exc).__name__}: {str(exc)[:160]}",
                         hint="is it a gallery .npz saved by ftk (truncated?)") from None
    if gallery.dim != spec.embedding_dim:
        raise InputError(f"gallery {path} holds {gallery.dim}-d embeddings but its spec says {spec.embedding_dim}",
                         hint="the file is inconsistent; re-enrol it")
    return gallery


def check_gallery_model(gallery: Gallery, embedder: Embedder) -> None:
    """Refuse a gallery enrolled by another model: its embeddings live in another space."""
    how = ("re-enrol the gallery with this model: `ftk match PROBE --gallery PERSON_FOLDERS --model THIS_MODEL "
           "--save-gallery NEW.npz` (the app needs the same re-registration when its model file changes)")
    if gallery.dim != embedder.spec.embedding_dim:
        raise InputError(
            f"gallery {gallery.source} holds {gallery.dim}-d embeddings from {gallery.spec.backbone} but this model "
            f"({embedder.spec.backbone}) outputs {embedder.spec.embedding_dim}-d ones", hint=how)
    if gallery.model_sha256 != embedder.model_sha256:
        raise InputError(
            f"gallery {gallery.source} was enrolled with another model (sha256 {gallery.model_sha256[:12]}…, "
            f"{gallery.model_name}) than this one (sha256 {embedder.model_sha256[:12]}…, {embedder.name}); "
            "scores across models are meaningless", hint=how)


# --- search -------------------------------------------------------------------------------------------------------
def rank_people(embeddings: np.ndarray, person_starts: np.ndarray, query: np.ndarray,
                top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The app's search: cosine with every row, each person's best row, the ``top_k`` people by that score.

    Returns (person ids, their best scores, the row of each best score), best first. ``embeddings`` rows and
    ``query`` are L2-normalised, so the dot product is the cosine similarity.
    """
    scores = embeddings @ query
    per_person = np.maximum.reduceat(scores, person_starts)
    k = min(top_k, len(per_person))
    if k < len(per_person):
        top = np.argpartition(-per_person, k - 1)[:k]
    else:
        top = np.arange(len(per_person))
    top = top[np.argsort(-per_person[top], kind="stable")]
    ends = np.r_[person_starts[1:], len(scores)]
    rows = np.array([person_starts[p] + int(np.argmax(scores[person_starts[p]:ends[p]])) for p in top], np.int64)
    return top, per_person[top], rows


@dataclass
class Candidate:
    name: str
    score: float  # the best cosine similarity over this person's enrolled images
    image: str  # the enrolled image that gave it
    enrolled_images: int


@dataclass
class MatchResult:
    probe: str
    model_name: str
    model_sha256: str
    gallery: str
    gallery_people: int
    gallery_embeddings: int
    top: list[Candidate]
    threshold: float | None
    accepted: bool | None  # the app's decision: best score >= threshold (None without a threshold)
    match: str | None  # the accepted person's name
    detect_ms: float
    embed_ms: float
    search_ms: float
    probe_detector_score: float = 0.0
    threshold_note: str = ""

    @property
    def embed_search_ms(self) -> float:
        return self.embed_ms + self.search_ms


def match_probe(probe_path: str | Path, gallery: Gallery, embedder: Embedder, threshold: float | None,
                top_k: int = 5, detector: "FaceDetector | None" = None, pick: str = DEFAULT_PICK) -> MatchResult:
    """Rank the probe's face against the gallery as the app does, timing embedding and search separately."""
    if top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    check_gallery_model(gallery, embedder)
    t0 = time.perf_counter()
    crops, failures = detect_and_crop([probe_path], embedder.spec, detector, pick=pick)
    detect_ms = (time.perf_counter() - t0) * 1e3
    if not crops:
        raise NoFacesError(f"probe {probe_path}: {failures[0][1]}", hint="use a photo with one clearly visible face")
    embedder.embed(crops[0].crop[None])  # warm-up: time the steady state, as on the app's second frame
    t1 = time.perf_counter()
    query = embedder.embed(crops[0].crop[None])[0]  # unit length: the Embedder contract
    check_embeddings(query[None], embedder.name)
    t2 = time.perf_counter()
    people, scores, rows = rank_people(gallery.embeddings, gallery.person_starts, query, top_k)
    t3 = time.perf_counter()
    top = [Candidate(gallery.names[p], float(s), gallery.paths[r], gallery.count(int(p)))
           for p, s, r in zip(people, scores, rows)]
    decision = verdict(top[0].score, threshold)
    accepted = None if decision is None else decision == "same"
    return MatchResult(
        probe=str(probe_path), model_name=embedder.name, model_sha256=embedder.model_sha256, gallery=gallery.source,
        gallery_people=len(gallery.names), gallery_embeddings=len(gallery.embeddings), top=top, threshold=threshold,
        accepted=accepted, match=top[0].name if accepted else None, detect_ms=detect_ms,
        embed_ms=(t2 - t1) * 1e3, search_ms=(t3 - t2) * 1e3, probe_detector_score=crops[0].score,
    )
