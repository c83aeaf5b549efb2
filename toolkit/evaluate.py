"""``ftk evaluate``: classification accuracy and LFW-protocol face verification for any :class:`Embedder`.

One code path for a PyTorch checkpoint and a .tflite (ours or foreign): the pair images go through
:mod:`toolkit.data.faces` (MTCNN once, cached per file; the ``--pick`` face; the model spec's crop; embeddings in
batches) and pairs are scored by cosine similarity. Crops are cached per (image set, crop settings) and embeddings
per (model sha256, crop settings) under ``$FTK_CACHE_DIR``, so evaluating the float32 and int8 exports of one model
reuses detection and crops, and re-running an evaluation reuses the embeddings.

Every pair must be scored, so an image where MTCNN finds no face is cropped at the median face position of the other
images (the ``fallback`` missing-face policy; LFW images are centred on the person) and the report counts them.

The report (``./<model stem>.eval/report.json`` by default; see :mod:`toolkit.reports`) is what deploy, compare and
match read for the cosine threshold calibrated for exactly this model file.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from toolkit import __version__
from toolkit.app_sim import app_cropper, app_eval_dir, check_simulation, cropper_fingerprint, describe_crops
from toolkit.checkpoint import load_checkpoint
from toolkit.constants import DEFAULT_FAR, DEFAULT_PICK
from toolkit.data.dataset import image_root_for, read_faces_csv
from toolkit.data.detect import FaceDetector
from toolkit.data.faces import CropOverride, FaceCrops, cached_crops, check_pick, crop_records, embed_crops
from toolkit.data.pairs import check_pair_images, read_pairs, subset_pairs
from toolkit.embedders import Embedder, EmbedderOptions, TorchEmbedder, load_embedder
from toolkit.errors import InputError, OutputExistsError
from toolkit.io import check_outputs_free, check_writable_location, write_json_atomic
from toolkit.metrics import DEFAULT_FARS, DEGENERATE_THRESHOLD, embedding_collapse, far_key, verification_metrics
from toolkit.plots import plot_roc, plot_score_histogram
from toolkit.reports import REPORT_NAME, working_eval_dir
from toolkit.spec import ModelSpec

if TYPE_CHECKING:
    from toolkit.models.face_model import FaceModel

log = logging.getLogger(__name__)

ROC_NAME = "roc.png"
HISTOGRAM_NAME = "scores.png"


@dataclass
class ClassificationResult:
    csv_path: str
    split: str
    n_faces: int
    n_correct: int
    accuracy: float  # top-1
    n_skipped: int = 0  # faces of people who are not classes of this model, or unreadable images
    n_not_classes: int = 0  # of n_skipped: faces of people the model has no class for
    n_no_face: int = 0  # of n_skipped: images unreadable or without a usable face crop
    n_classes: int = 0  # the head's classes: chance is 1 / n_classes


@dataclass
class VerificationResult:
    pairs_file: str
    image_root: str
    n_pairs: int
    n_same: int
    n_different: int
    n_images: int
    n_folds: int
    folds_from_file: bool  # False: 10 stratified folds derived from a one-set file (pairsDevTest.txt)
    accuracy_mean: float  # LFW protocol: threshold chosen on the other folds, mean over folds
    accuracy_std: float
    fold_accuracies: list[float]
    auc: float
    eer: float
    eer_threshold: float
    best_threshold: float  # best-accuracy cosine threshold on all pairs
    best_threshold_accuracy: float
    far: float  # the FAR the user chose (--far)
    threshold: float  # recommended cosine threshold at that FAR (accept when similarity >= threshold)
    tar_at_far: dict[str, float]  # keys: stringified FARs, e.g. "0.001"
    thresholds_at_far: dict[str, float]
    far_measured: dict[str, float]  # the FAR actually achieved at each threshold (<= target)
    far_resolvable: dict[str, bool]  # False when FAR < 1 / n_different (the threshold is above every impostor)
    same_mean: float
    different_mean: float
    n_center_crop_fallbacks: int  # images where MTCNN found no face
    center_crop_fallbacks: list[str] = field(default_factory=list)  # up to 20 of them
    roc_points: dict[str, list[float]] = field(default_factory=dict)  # downsampled fpr/tpr for overlays


@dataclass
class EvaluationResult:
    model_path: str | None  # report.json: relative to the report's folder
    model_sha256: str
    embedder: str
    spec: dict[str, Any]
    classification: ClassificationResult | None
    verification: VerificationResult | None
    out_dir: Path | None
    report_path: Path | None
    roc_path: Path | None
    histogram_path: Path | None
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    simulate_app: str | None = None  # None: the model spec's crop; "before"/"after": the app's (toolkit.app_sim)
    warnings: list[str] = field(default_factory=list)  # results not to trust (collapsed embeddings), also logged

    def to_report(self) -> dict[str, Any]:
        return {
            "model_sha256": self.model_sha256,
            "model_path": self.model_path,
            "embedder": self.embedder,
            "spec": self.spec,
            "crops": "model spec" if self.simulate_app is None else f"app {self.simulate_app} deploy",
            "verification": None if self.verification is None else asdict(self.verification),
            "classification": None if self.classification is None else asdict(self.classification),
            "timings": self.timings,
            "notes": self.notes,
            "warnings": self.warnings,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "ftk_version": __version__,
        }


# --- the stages ----------------------------------------------------------------------------------------------------
def find_image_root(pairs_path: Path, data: str | Path | None, first_image: str) -> Path:
    """``--data``, or an LFW folder beside the pairs file (lfw-deepfunneled/, lfw/) that has the first image."""
    if data is not None:
        return Path(data)
    for candidate in (pairs_path.parent / "lfw-deepfunneled", pairs_path.parent / "lfw", pairs_path.parent):
        if (candidate / first_image).is_file():
            log.info("using images under %s", candidate)
            return candidate
    raise InputError(f"--data is required: no folder beside {pairs_path} has {first_image}",
                     hint="pass --data PATH/TO/lfw-deepfunneled")


def app_crop_override(spec: "ModelSpec", simulate_app: str | None,
                      app_dir: str | Path | None = None) -> "CropOverride | None":
    """The Android app's crops (:mod:`toolkit.app_sim`) handed down to :mod:`toolkit.data.faces`; None: the spec's.
    With ``app_dir``, the "after" crops are computed by that patched app's own code."""
    if simulate_app is None:
        return None

    # The "after" crops come from Kotlin (the generated template, or the app's sources): a change there must not
    # reuse old crops.
    return CropOverride(simulate_app, cropper_fingerprint(simulate_app, app_dir),
                        lambda: app_cropper(spec, simulate_app, app_dir))


def pair_crops(paths: Sequence[Path], spec: "ModelSpec", **kwargs) -> "FaceCrops":
    """One crop per pair image, in order (:func:`toolkit.data.faces.cached_crops`, missing faces at the median face
    position); an unreadable image is an error: every pair must be scored."""
    crops = cached_crops(paths, spec, missing="fallback", **kwargs)
    if crops.rejects:
        path, why = crops.rejects[0]
        raise InputError(f"{len(crops.rejects)} images cannot be read, e.g. {path}: {why}",
                         hint="every image named by the pairs must be readable; fix or replace the files")
    return crops


def verify_pairs(embedder: "Embedder", pairs_path: str | Path, data: str | Path | None = None,
                 far: float = DEFAULT_FAR, fars: Sequence[float] = DEFAULT_FARS, limit_pairs: int | None = None,
                 pick: str = DEFAULT_PICK, detector: "FaceDetector | None" = None, batch_size: int = 64,
                 progress: bool = True, timings: dict[str, float] | None = None, simulate_app: str | None = None,
                 app_dir: str | Path | None = None) -> tuple[VerificationResult, np.ndarray, np.ndarray]:
    """LFW-protocol verification; returns the result plus the pair scores and same/different labels."""
    timings = timings if timings is not None else {}
    pairs_path = Path(pairs_path)
    pairs = subset_pairs(read_pairs(pairs_path), limit_pairs)
    root = find_image_root(pairs_path, data, pairs.pairs[0].left)
    paths = check_pair_images(pairs, root)
    index = {rel: i for i, rel in enumerate(pairs.image_paths())}

    t0 = time.perf_counter()
    crops = pair_crops(paths, embedder.spec, detector=detector, pick=pick, progress=progress,
                       override=app_crop_override(embedder.spec, simulate_app, app_dir))
    timings["detect_and_crop_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = embed_crops(embedder, crops.images, batch_size=batch_size, progress=progress, cache_key=crops.key)
    timings["embed_s"] = time.perf_counter() - t0

    left = np.array([index[p.left] for p in pairs.pairs])
    right = np.array([index[p.right] for p in pairs.pairs])
    scores = np.sum(emb[left] * emb[right], axis=1).astype(np.float64)
    same = pairs.same
    all_fars = sorted({*map(float, fars), float(far)}, reverse=True)
    m = verification_metrics(scores, same, folds=pairs.folds, fars=all_fars)
    chosen = m.far_point(far)
    roc = m.roc
    keep = np.unique(np.r_[np.linspace(0, len(roc.fpr) - 1, min(len(roc.fpr), 400)).astype(int)])
    relative = dict(zip(map(str, paths), pairs.image_paths()))
    fallback_paths = [relative[p] for p in crops.fallback]
    result = VerificationResult(
        pairs_file=str(pairs_path), image_root=str(root), n_pairs=m.n_pairs, n_same=m.n_same,
        n_different=m.n_different, n_images=len(paths), n_folds=m.n_folds, folds_from_file=m.folds_from_file,
        accuracy_mean=m.accuracy_mean, accuracy_std=m.accuracy_std, fold_accuracies=m.fold_accuracies,
        auc=m.auc, eer=m.eer, eer_threshold=m.eer_threshold, best_threshold=m.best_threshold,
        best_threshold_accuracy=m.best_threshold_accuracy, far=float(far), threshold=chosen.threshold,
        tar_at_far={far_key(p.far_target): p.tar for p in m.far_points},
        thresholds_at_far={far_key(p.far_target): p.threshold for p in m.far_points},
        far_measured={far_key(p.far_target): p.far for p in m.far_points},
        far_resolvable={far_key(p.far_target): p.resolvable for p in m.far_points},
        same_mean=m.same_mean, different_mean=m.different_mean,
        n_center_crop_fallbacks=len(fallback_paths), center_crop_fallbacks=fallback_paths[:20],
        roc_points={"fpr": roc.fpr[keep].tolist(), "tpr": roc.tpr[keep].tolist()},
    )
    return result, scores, same


def has_split(csv_path: str | Path, split: str) -> bool:
    return any(r.split_type == split for r in read_faces_csv(Path(csv_path)))


def classification_accuracy(model: "FaceModel", class_names: Sequence[str], csv_path: str | Path,
                            split: str = "test", batch_size: int = 64, progress: bool = True) -> ClassificationResult:
    """Top-1 accuracy of the checkpoint's classifier head on the CSV's ``split`` faces (their CSV boxes)."""
    import dataclasses

    import torch

    csv_path = Path(csv_path)
    records = [r for r in read_faces_csv(csv_path) if r.split_type == split]
    if not records:
        raise InputError(f"{csv_path} has no '{split}' rows to classify",
                         hint="re-run `ftk prepare` with a test share in --split, e.g. 0.7,0.15,0.15")
    names = list(class_names)
    label_of = {n: i for i, n in enumerate(names)}
    ours = []
    for r in records:
        label = label_of.get(r.person_name) if names else r.label
        if label is not None and 0 <= label < model.num_classes:
            ours.append(dataclasses.replace(r, label=label))
    faces, labels, rejected = crop_records(ours, image_root_for(csv_path), model.spec, progress=progress)
    for path, why in rejected:
        log.warning("skipping %s: %s", path, why)
    skipped = len(records) - len(faces)
    if not len(faces):
        raise InputError(f"none of the {len(records)} '{split}' faces in {csv_path} belong to this model's "
                         f"{model.num_classes} classes", hint="evaluate with the faces CSV the model was trained on")
    predictions = []
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(faces), batch_size):
            x = torch.from_numpy(model.spec.to_model_input(faces[s : s + batch_size]))
            predictions.append(model(x).argmax(dim=1).numpy())
    correct = int((np.concatenate(predictions) == np.asarray(labels)).sum())
    return ClassificationResult(csv_path=str(csv_path), split=split, n_faces=len(labels), n_correct=correct,
                                accuracy=correct / len(labels), n_skipped=skipped,
                                n_not_classes=len(records) - len(ours), n_no_face=len(rejected),
                                n_classes=model.num_classes)


def evaluate(embedder: "Embedder", *, pairs: str | Path | None = None, data: str | Path | None = None,
             csv: str | Path | None = None, classifier: "FaceModel | None" = None,
             class_names: Sequence[str] = (), far: float = DEFAULT_FAR, out_dir: str | Path | None = None,
             model_path: str | Path | None = None, limit_pairs: int | None = None, pick: str = DEFAULT_PICK,
             detector: "FaceDetector | None" = None, batch_size: int = 64, overwrite: bool = False,
             progress: bool = True, simulate_app: str | None = None,
             app_dir: str | Path | None = None) -> EvaluationResult:
    """Evaluate one embedder: classification on ``csv`` (needs ``classifier``) and verification on ``pairs``.

    Writes ``report.json``, ``roc.png`` and ``scores.png`` to ``out_dir`` (default ``<model stem>.eval/`` in the
    current folder, ``<model stem>.app-<mode>.eval/`` with ``simulate_app``; nothing is written when neither
    ``out_dir`` nor ``model_path`` is given). ``simulate_app`` crops the pair images as the Android app does
    (:mod:`toolkit.app_sim`); with ``app_dir`` ("after"), through that patched app checkout's own code on the JVM.
    """
    started = time.perf_counter()
    if simulate_app is not None and pairs is None:
        raise InputError("--simulate-app needs --pairs: it measures verification with the app's crops")
    if pairs is None and csv is None:
        raise InputError("nothing to evaluate", hint="give --pairs PAIRS.txt (verification) and/or --csv faces.csv")
    if not (0 < far < 1):
        raise InputError(f"--far must be between 0 and 1, e.g. 1e-3; got {far}")
    check_pick(pick)
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    check_simulation(simulate_app)
    if app_dir is not None and simulate_app != "after":
        raise InputError("--app runs the patched app's own crop code: it goes with --simulate-app after")
    if app_dir is not None and not Path(app_dir).is_dir():
        raise InputError(f"--app: app folder not found: {app_dir}")
    for what, given in (("pairs file", pairs), ("faces CSV", csv)):
        if given is not None and not Path(given).is_file():  # before the output check: the likelier mistake
            raise InputError(f"{what} not found: {given}")
    if out_dir is None and model_path is not None:
        # In the current folder, never beside the model: the user did not point --out at the model's folder.
        out_dir = working_eval_dir(model_path) if simulate_app is None else \
            app_eval_dir(model_path, simulate_app)
        check_not_another_models(Path(out_dir), embedder.model_sha256, overwrite)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        check_outputs_free([out / REPORT_NAME, out / ROC_NAME, out / HISTOGRAM_NAME], overwrite)
        check_writable_location(out, "report folder")  # created when the report is written, not before

    notes: list[str] = [f"crops: {describe_crops(simulate_app, app_dir)}"] if simulate_app else []
    timings: dict[str, float] = {}
    classification = None
    if csv is not None:
        if classifier is None or classifier.num_classes == 0:
            notes.append("classification skipped: the model has no classifier head (a .tflite or head-less model)")
            log.warning(notes[-1])
        elif pairs is not None and not has_split(csv, "test"):  # verification still runs (e.g. runs.sh's 0.8/0.2)
            notes.append(f"classification skipped: {csv} has no 'test' rows (its val rows chose the checkpoint; "
                         "ftk prepare --split 0.7,0.15,0.15 keeps a test share)")
            log.warning(notes[-1])
        else:
            t0 = time.perf_counter()
            classification = classification_accuracy(classifier, class_names, csv, batch_size=batch_size,
                                                      progress=progress)
            timings["classification_s"] = time.perf_counter() - t0

    verification, scores, same, warnings = None, None, None, []
    if pairs is not None:
        verification, scores, same = verify_pairs(embedder, pairs, data, far=far, limit_pairs=limit_pairs, pick=pick,
                                                  detector=detector, batch_size=batch_size, progress=progress,
                                                  timings=timings, simulate_app=simulate_app, app_dir=app_dir)
        if verification.n_center_crop_fallbacks:
            notes.append(f"MTCNN found no face in {verification.n_center_crop_fallbacks} of "
                         f"{verification.n_images} images; they were centre-cropped")
        warnings = degenerate_scores(verification, scores, same)
        for warning in warnings:
            log.warning("%s", warning)
        unresolved = [k for k, ok in verification.far_resolvable.items() if not ok]
        if unresolved:
            notes.append(f"FAR {', '.join(unresolved)} is below 1/{verification.n_different} different-person pairs: "
                         "the threshold there is just above the highest impostor score (use pairs.txt for more)")

    timings["total_s"] = time.perf_counter() - started
    result = EvaluationResult(
        model_path=None if model_path is None else str(model_path), model_sha256=embedder.model_sha256,
        embedder=embedder.name, spec=embedder.spec.to_dict(), classification=classification,
        verification=verification, out_dir=out, report_path=None, roc_path=None, histogram_path=None,
        seconds=timings["total_s"], timings=timings, notes=notes, simulate_app=simulate_app, warnings=warnings,
    )
    if out is not None:
        _write_outputs(result, out, scores, same)
    return result


def check_not_another_models(out: Path, model_sha256: str, overwrite: bool) -> None:
    """The default report folder (named after the model file's stem) may hold another file's report, e.g. of
    runs/a/best.pt when this is runs/b/best.pt: say so, rather than only that the output exists."""
    existing = out / REPORT_NAME
    if overwrite or not existing.is_file():
        return
    try:
        other = json.loads(existing.read_text()).get("model_sha256")
    except (OSError, ValueError):
        return
    if other and other != model_sha256:
        raise OutputExistsError(f"{out} holds the report of another model file with the same name "
                                f"(sha256 {str(other)[:12]})", hint="pass --out DIR for this one, or --overwrite to "
                                                                    "replace that report")


def degenerate_scores(v: VerificationResult, scores, same) -> list[str]:
    """Why these results are not to be trusted: collapsed embeddings, thresholds that round to 1."""
    collapsed = embedding_collapse(scores, same)
    high = {k: t for k, t in v.thresholds_at_far.items() if t >= DEGENERATE_THRESHOLD}
    if not high:
        return [collapsed] if collapsed else []
    said = ", ".join(f"{t:.6f} at FAR {k}" for k, t in high.items())
    return [w for w in (collapsed, f"calibrated thresholds of {DEGENERATE_THRESHOLD} or more ({said}): a "
                                   "threshold that close to 1 decides on rounding noise; do not deploy it") if w]


def _write_outputs(result: EvaluationResult, out: Path, scores, same) -> None:
    v = result.verification
    label = Path(result.model_path).name if result.model_path else result.embedder
    if v is not None:
        key = far_key(v.far)
        result.roc_path = plot_roc(
            {f"{label} (AUC {v.auc:.4f})": (v.roc_points["fpr"], v.roc_points["tpr"])}, out / ROC_NAME,
            title=f"ROC, {Path(v.pairs_file).name}", marks={f"threshold at FAR {key}": (v.far_measured[key], v.tar_at_far[key])},
        )
        result.histogram_path = plot_score_histogram(
            scores, same, out / HISTOGRAM_NAME, title=f"{label}: {Path(v.pairs_file).name}",
            thresholds={"best accuracy": v.best_threshold, f"FAR {key}": v.threshold},
        )
    result.report_path = out / REPORT_NAME
    report = result.to_report()
    if result.model_path:  # relative to the report: a folder moved with the model keeps it right
        report["model_path"] = Path(os.path.relpath(Path(result.model_path).resolve(), out.resolve())).as_posix()
    write_json_atomic(result.report_path, report)
    log.info("wrote %s", result.report_path)


def evaluate_model_file(path: str | Path, options: "EmbedderOptions | None" = None, **kwargs) -> EvaluationResult:
    """Load a checkpoint / state_dict / .tflite as an embedder (and the classifier head of a checkpoint), evaluate."""
    path = Path(path)
    options = options or EmbedderOptions()
    if kwargs.get("simulate_app") is not None and kwargs.get("pairs") is None:  # before loading the model
        raise InputError("--simulate-app needs --pairs: it measures verification with the app's crops")
    if not path.exists():
        raise InputError(f"model not found: {path}")
    classifier, class_names = None, []
    if path.suffix.lower() != ".tflite" and options.backbone is None:
        loaded = load_checkpoint(path)
        if options.crop and options.crop != loaded.model.spec.crop:
            loaded.model.spec = loaded.model.spec.replace(crop=options.crop)
        embedder = TorchEmbedder.from_checkpoint(loaded, device=options.device)
        if loaded.model.num_classes:
            classifier, class_names = loaded.model, list(loaded.meta.class_names)
    else:
        embedder = load_embedder(path, options)
    return evaluate(embedder, classifier=classifier, class_names=class_names, model_path=path, **kwargs)
