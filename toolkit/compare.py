"""``ftk compare``: cosine similarity between the faces in a few images, with same/different verdicts.

Each image goes through the model's own preprocessing (:mod:`toolkit.data.faces`): MTCNN, the ``--pick`` face, the
crop the spec asks for (detector box + margin, or five-point alignment), then the embedder (a PyTorch checkpoint or a .tflite, one code
path). The verdict threshold is the one the model's evaluation report calibrated at a false-accept rate; without a
report there is no honest default, so verdicts are left out unless ``--threshold`` is given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from toolkit.constants import DEFAULT_PICK, pyplot
from toolkit.data.detect import FaceDetector
from toolkit.data.faces import crop_images, embed_crops
from toolkit.embedders import Embedder
from toolkit.errors import InputError, NoFacesError
from toolkit.io import atomic_path
from toolkit.reports import DEFAULT_FAR, resolve_threshold  # the one threshold resolver
from toolkit.spec import ModelSpec
log = logging.getLogger(__name__)

# --- detection + crop ---------------------------------------------------------------------------------------------
@dataclass
class FaceCrop:
    path: str
    crop: np.ndarray  # uint8 [S, S, 3], the model's input
    box: tuple[float, float, float, float]
    score: float  # detector confidence
    faces_found: int


def detect_and_crop(paths: Sequence[str | Path], spec: ModelSpec, detector: "FaceDetector | None" = None,
                    progress: bool = False, pick: str = DEFAULT_PICK) -> tuple[list[FaceCrop], list[tuple[str, str]]]:
    """One face per image (the ``pick`` rule of :mod:`toolkit.data.faces`), cropped as the spec says;
    (crops, [(path, why it was left out)])."""
    found = crop_images(paths, spec, detector=detector, pick=pick, progress=progress)
    crops = [FaceCrop(path, image, tuple(face.box), float(face.score), n)
             for path, image, face, n in zip(found.paths, found.images, found.faces, found.faces_found)]
    return crops, found.rejects


# --- compare ------------------------------------------------------------------------------------------------------
@dataclass
class PairScore:
    a: str
    b: str
    score: float
    verdict: str | None  # "same" / "different", None without a threshold


@dataclass
class CompareResult:
    model_name: str  # the embedder's label, e.g. "pytorch", "tflite-model_int8"
    model_sha256: str
    spec: dict
    images: list[str]  # the images whose face was embedded, in matrix order
    failures: list[tuple[str, str]]  # (path, reason) for images left out
    scores: list[list[float]]  # pairwise cosine similarity, images x images
    pairs: list[PairScore]
    threshold: float | None
    threshold_source: str
    threshold_note: str
    detector_scores: list[float] = field(default_factory=list)
    plot: str | None = None


def cosine_matrix(embeddings: np.ndarray) -> np.ndarray:
    """Pairwise cosine of unit-length embeddings (toolkit.data.faces.embed_crops checks they are)."""
    return np.clip(embeddings @ embeddings.T, -1.0, 1.0)


def verdict(score: float, threshold: float | None) -> str | None:
    """The app's rule: the same person when the cosine similarity reaches the threshold."""
    if threshold is None:
        return None
    return "same" if score >= threshold else "different"


def compare_images(paths: Sequence[str | Path], embedder: Embedder, threshold: float | None = None, *,
                   model_path: str | Path | None = None, far: float = DEFAULT_FAR, plot: str | Path | None = None,
                   detector: "FaceDetector | None" = None, pick: str = DEFAULT_PICK,
                   model_flags: str = "") -> CompareResult:
    """Pairwise cosine similarity of the faces in ``paths``; images without a usable face are reported, not fatal.

    ``threshold`` None: the one calibrated for ``model_path`` at ``far`` (its evaluation report), else no verdicts
    (and a note with the ``ftk evaluate`` command that makes one; ``model_flags`` describe the model there).
    """
    if len(paths) < 2:
        raise InputError(f"compare needs at least two images, got {len(paths)}")
    choice = resolve_threshold(model_path, threshold, far, embedder.spec, model_flags)

    crops, failures = detect_and_crop(paths, embedder.spec, detector, pick=pick)
    if len(crops) < 2:
        named = "; ".join(f"{Path(p).name}: {why}" for p, why in failures)
        raise NoFacesError(f"fewer than two images have a usable face ({named})",
                           hint="use photos with one clearly visible face")
    embeddings = embed_crops(embedder, np.stack([c.crop for c in crops]), progress=False)
    matrix = cosine_matrix(embeddings)
    names = [c.path for c in crops]
    pairs = [
        PairScore(names[i], names[j], float(matrix[i, j]), verdict(float(matrix[i, j]), choice.value))
        for i in range(len(names)) for j in range(i + 1, len(names))
    ]
    result = CompareResult(
        model_name=embedder.name, model_sha256=embedder.model_sha256, spec=embedder.spec.to_dict(), images=names,
        failures=failures, scores=[[round(float(v), 6) for v in row] for row in matrix], pairs=pairs,
        threshold=choice.value, threshold_source=choice.source, threshold_note=choice.note,
        detector_scores=[c.score for c in crops],
    )
    if plot is not None:
        result.plot = str(plot_comparison([c.crop for c in crops], names, matrix, choice.value, plot))
    return result


def short_label(path: str, width: int = 22) -> str:
    """The file stem, cut from the left: LFW-style names differ in their ending (Person_0001, Person_0002)."""
    name = Path(path).stem
    return name if len(name) <= width else "…" + name[-(width - 1):]


def plot_comparison(crops: Sequence[np.ndarray], names: Sequence[str], matrix: np.ndarray, threshold: float | None,
                    out: str | Path) -> Path:
    """A PNG grid: the face crops along the top and left, each cell the pair's score (green same, red different)."""
    plt = pyplot()

    n = len(crops)
    cell = 1.3
    fig, axes = plt.subplots(n + 1, n + 1, figsize=(cell * (n + 1), cell * (n + 1)), squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    title = f"threshold {threshold:.3f}" if threshold is not None else "no threshold:\nscores only"
    axes[0, 0].text(0.5, 0.5, title, ha="center", va="center", fontsize=7, transform=axes[0, 0].transAxes)
    for i in range(n):
        for ax in (axes[0, i + 1], axes[i + 1, 0]):
            ax.imshow(crops[i])
        label = f"[{i}] {short_label(names[i], 14)}"
        axes[0, i + 1].set_title(label, fontsize=6)
        axes[i + 1, 0].set_ylabel(label, fontsize=6)
        for j in range(n):
            ax = axes[i + 1, j + 1]
            score = float(matrix[i, j])
            if i == j:
                color = "#dddddd"
            elif threshold is None:
                color = plt.cm.viridis((score + 1) / 2)
            else:
                color = "#9be09b" if score >= threshold else "#f2a0a0"
            ax.set_facecolor(color)
            ax.text(0.5, 0.5, f"{score:.3f}", ha="center", va="center", fontsize=9, transform=ax.transAxes,
                    color="white" if (threshold is None and i != j and score < 0.3) else "black")
    fig.suptitle("cosine similarity between face crops", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out
