"""Golden reference embeddings: small, reviewable sets that catch drift in preprocessing, loading or the model code.

A set is a folder ``reference_embeddings/<name>/`` holding only numpy/JSON files (loaded with
``allow_pickle=False``) plus the checkpoint they came from (our weights-only checkpoint format):

- ``inputs.npy``      uint8 [N, S, S, 3] face crops (NHWC, RGB) as the model takes them
- ``embeddings.npy``  float32 [N, D] PyTorch embeddings (L2-normalised)
- ``distances.npy``   float32 [N, N] Euclidean distances between them: the golden distance matrix
- ``checkpoint.pt``   the model
- ``manifest.json``   spec, sha256 of every file, tolerances, how it was made

Sets are written only by an explicit command, never by a test::

    python -m toolkit.reference regenerate tiny-synthetic --overwrite
    python -m toolkit.reference regenerate-faces NAME --checkpoint CKPT --images DIR_OR_CSV [--limit 32]
    python -m toolkit.reference verify [NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from toolkit.checkpoint import CheckpointMeta, load_checkpoint, read_checkpoint_meta, save_checkpoint
from toolkit.data.crop import crop_face
from toolkit.data.detect import list_images
from toolkit.data.faces import crop_images, load_face_crops, spread_sample
from toolkit.embedders import TorchEmbedder
from toolkit.errors import InputError, OutputExistsError, ToolkitError
from toolkit.io import read_json, sha256_bytes, sha256_file, write_json_atomic
from toolkit.models.batchnorm import recalibrate_batchnorm
from toolkit.models.registry import create_backbone, default_spec, load_backbone_weights, load_state_dict_file
from toolkit.spec import ModelSpec
from toolkit.versions import tool_versions

log = logging.getLogger(__name__)

REFERENCE_FORMAT = "ftk.reference/1"
FILES = ("inputs.npy", "embeddings.npy", "distances.npy", "checkpoint.pt")
# Tight enough that any change to preprocessing or the model code shows; loose enough for CPU kernel differences.
DEFAULT_TOLERANCE = {"embeddings_atol": 1e-4, "distances_atol": 1e-4}
TINY_SET = "tiny-synthetic"
TINY_COUNT = 16


def reference_root() -> Path:
    """``$FTK_REFERENCE_DIR`` or ``reference_embeddings/`` at the top of the checkout."""
    env = os.environ.get("FTK_REFERENCE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "reference_embeddings"


@dataclass
class ReferenceSet:
    name: str
    root: Path
    manifest: dict[str, Any]
    spec: ModelSpec
    inputs: np.ndarray
    embeddings: np.ndarray
    distances: np.ndarray

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"


@dataclass
class VerifyResult:
    name: str
    max_embedding_diff: float
    max_distance_diff: float
    tolerance: dict[str, float]

    @property
    def passed(self) -> bool:
        return (self.max_embedding_diff <= self.tolerance["embeddings_atol"]
                and self.max_distance_diff <= self.tolerance["distances_atol"])


def list_reference_sets(root: Path | None = None) -> list[str]:
    root = root or reference_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "manifest.json").is_file())


def load_reference_set(name: str, root: Path | None = None) -> ReferenceSet:
    """Load a set, checking every file against the sha256 in its manifest."""
    root = (root or reference_root()) / name
    if not (root / "manifest.json").is_file():
        known = ", ".join(list_reference_sets(root.parent)) or "none"
        raise InputError(f"no reference set {name!r} in {root.parent}", hint=f"known sets: {known}")
    manifest = read_json(root / "manifest.json", "reference manifest")
    for file in FILES:
        expected = (manifest.get("files") or {}).get(file, {}).get("sha256")
        if not (root / file).is_file():
            raise InputError(f"reference set {name}: {file} is missing")
        if expected != sha256_file(root / file):
            raise InputError(f"reference set {name}: {file} does not match its manifest sha256",
                             hint="regenerate it explicitly with python -m toolkit.reference")
    arrays = {f: np.load(root / f, allow_pickle=False) for f in ("inputs.npy", "embeddings.npy", "distances.npy")}
    return ReferenceSet(name=name, root=root, manifest=manifest, spec=ModelSpec.from_dict(manifest["spec"]),
                        inputs=arrays["inputs.npy"], embeddings=arrays["embeddings.npy"],
                        distances=arrays["distances.npy"])


def find_reference_for(spec: ModelSpec, root: Path | None = None) -> ReferenceSet | None:
    """A stored set whose inputs fit ``spec`` (same backbone, input size and embedding dim), if any."""
    for name in list_reference_sets(root):
        ref = load_reference_set(name, root)
        if (ref.spec.backbone, ref.spec.input_size, ref.spec.embedding_dim) == (
                spec.backbone, spec.input_size, spec.embedding_dim):
            return ref
    return None


def distance_matrix(embeddings: np.ndarray) -> np.ndarray:
    """Euclidean distances between L2-normalised embeddings (facenet-pytorch's golden-matrix convention)."""
    e = np.asarray(embeddings, np.float64)
    sq = np.sum(e * e, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * e @ e.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2).astype(np.float32)


def torch_embeddings(checkpoint: str | Path, faces: np.ndarray) -> np.ndarray:
    return TorchEmbedder.from_checkpoint(load_checkpoint(checkpoint)).embed(faces)


def verify_reference_set(name: str, root: Path | None = None) -> VerifyResult:
    """Re-run the stored checkpoint on the stored inputs; compare with the stored embeddings and distances."""
    ref = load_reference_set(name, root)
    emb = torch_embeddings(ref.checkpoint, ref.inputs)
    dist = distance_matrix(emb)
    tolerance = dict(DEFAULT_TOLERANCE) | dict(ref.manifest.get("tolerance") or {})
    return VerifyResult(name=name,
                        max_embedding_diff=float(np.abs(emb - ref.embeddings).max()),
                        max_distance_diff=float(np.abs(dist - ref.distances).max()),
                        tolerance=tolerance)


# --------------------------------------------------------------------------------------------------------------------
# writing sets (explicit commands only)
# --------------------------------------------------------------------------------------------------------------------
def synthetic_inputs(size: int, count: int = TINY_COUNT, seed: int = 0) -> np.ndarray:
    """Seeded smooth random images: blocky colour fields plus noise, so a conv net sees structure, not white noise."""
    rng = np.random.default_rng(seed)
    cells = max(2, size // 4)
    base = rng.integers(0, 256, size=(count, cells, cells, 3)).astype(np.float32)
    reps = -(-size // cells)
    up = base.repeat(reps, axis=1).repeat(reps, axis=2)[:, :size, :size]
    return np.clip(up + rng.normal(0, 8, up.shape), 0, 255).astype(np.uint8)


def write_reference_set(name: str, checkpoint: str | Path, faces: np.ndarray, description: str,
                        root: Path | None = None, overwrite: bool = False, extra: dict[str, Any] | None = None
                        ) -> Path:
    """Compute PyTorch embeddings of ``faces`` with ``checkpoint`` and write the set, atomically as a folder."""
    root = root or reference_root()
    dest = root / name
    if dest.exists() and not overwrite:
        raise OutputExistsError(f"reference set {dest} exists", hint="pass --overwrite to regenerate it")
    faces = np.ascontiguousarray(faces, dtype=np.uint8)
    meta = read_checkpoint_meta(checkpoint)
    meta.spec.check_faces(faces)
    embeddings = torch_embeddings(checkpoint, faces).astype(np.float32)
    distances = distance_matrix(embeddings)
    with _staged(dest) as staging:
        np.save(staging / "inputs.npy", faces, allow_pickle=False)
        np.save(staging / "embeddings.npy", embeddings, allow_pickle=False)
        np.save(staging / "distances.npy", distances, allow_pickle=False)
        shutil.copyfile(checkpoint, staging / "checkpoint.pt")
        manifest = {
            "format": REFERENCE_FORMAT,
            "name": name,
            "description": description,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "spec": meta.spec.to_dict(),
            "count": int(len(faces)),
            "embedding_dim": int(embeddings.shape[1]),
            "distance": "euclidean between L2-normalised embeddings",
            "tolerance": dict(DEFAULT_TOLERANCE),
            "files": {f: {"sha256": sha256_file(staging / f), "size_bytes": (staging / f).stat().st_size}
                      for f in FILES},
            "tools": tool_versions(),
            "regenerate": f"python -m toolkit.reference regenerate {name} --overwrite" if name == TINY_SET else
                          f"python -m toolkit.reference regenerate-faces {name} ... --overwrite",
            **(extra or {}),
        }
        write_json_atomic(staging / "manifest.json", manifest)
    log.info("wrote reference set %s (%d faces)", dest, len(faces))
    return dest


@contextlib.contextmanager
def _staged(dest: Path) -> Iterator[Path]:
    """A temp folder beside ``dest`` to write a set into; moved into place only if the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield staging
        _publish(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _publish(staging: Path, dest: Path) -> None:
    """Move a finished set folder into place (readable by all), replacing an older one only once it is complete."""
    for f in staging.iterdir():
        f.chmod(0o644)
    staging.chmod(0o755)
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
        staging.rename(dest)
        shutil.rmtree(old)
    else:
        staging.rename(dest)


def regenerate_tiny_synthetic(root: Path | None = None, overwrite: bool = False, seed: int = 0) -> Path:
    """The tiny test model's set: seeded synthetic inputs, a seeded tiny checkpoint with BatchNorm re-estimated on
    a separate seeded batch, and its PyTorch embeddings."""
    import torch

    from toolkit.models.face_model import FaceModel

    spec = default_spec("tiny")
    torch.manual_seed(seed)
    model = FaceModel(spec, 4)
    recalibrate_batchnorm(model, synthetic_inputs(spec.input_size, 64, seed + 1))
    inputs = synthetic_inputs(spec.input_size, TINY_COUNT, seed)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "checkpoint.pt"
        save_checkpoint(ckpt, model, CheckpointMeta(spec=spec, num_classes=4, class_names=list("abcd"),
                                                    weights_source=f"random(seed={seed})+bn-calibrated(synthetic)"))
        return write_reference_set(TINY_SET, ckpt, inputs, root=root, overwrite=overwrite,
                                   description="tiny test backbone on seeded synthetic inputs; guards the "
                                               "preprocessing, checkpoint loading and embedding code",
                                   extra={"seed": seed})


def regenerate_face_set(name: str, checkpoint: str | Path, images: str | Path, limit: int = 32, seed: int = 0,
                        root: Path | None = None, overwrite: bool = False) -> Path:
    """A set of real face crops (e.g. MobileFaceNet on LFW crops): crops made by the toolkit from ``images``
    (a face folder or faces CSV) with the checkpoint's spec, then its PyTorch embeddings. Keep ``limit`` small:
    the set is committed (32 crops at 112x112 are ~1.2 MB before the checkpoint)."""
    spec = read_checkpoint_meta(checkpoint).spec
    crops = load_face_crops(images, spec, limit=limit, seed=seed, min_faces=3)
    sources = [str(Path(p).relative_to(images)) if Path(images).is_dir() else Path(p).name for p in crops.paths]
    return write_reference_set(name, checkpoint, crops.images, root=root, overwrite=overwrite,
                               description=f"{spec.backbone} on {len(crops)} real face crops",
                               extra={"sources": sources, "seed": seed})


# --------------------------------------------------------------------------------------------------------------------
# sets over ../shared: real faces and published weights that must not be copied into the repository
# --------------------------------------------------------------------------------------------------------------------
SHARED_SETS = "shared"  # reference_embeddings/shared/<name>/: manifest.json, embeddings.npy, distances.npy only
MOBILEFACENET_LFW = "mobilefacenet-lfw"
SHARED_FILES = ("embeddings.npy", "distances.npy")


@dataclass
class SharedVerifyResult:
    name: str
    faces: int
    crops_changed: int  # crops whose bytes differ from the stored crop sha256 (alignment / crop drift)
    max_crop_diff: float | None  # None: the stored crops are not kept, only their hashes
    max_embedding_diff: float
    max_distance_diff: float
    tolerance: dict[str, float]

    @property
    def passed(self) -> bool:
        return (not self.crops_changed and self.max_embedding_diff <= self.tolerance["embeddings_atol"]
                and self.max_distance_diff <= self.tolerance["distances_atol"])


def _shared_file(shared: Path, rel: str, sha256: str | None, what: str) -> Path:
    path = (shared / rel).resolve()
    if not path.is_relative_to(shared.resolve()) or not path.is_file():
        raise InputError(f"{what} {rel} not found under {shared}", hint="set FTK_SHARED to the shared data folder")
    if sha256 is not None and sha256_file(path) != sha256:
        raise InputError(f"{what} {rel} under {shared} differs from the one the reference set was made from")
    return path


def _shared_crops(shared: Path, spec: ModelSpec, faces: list[dict[str, Any]]) -> tuple[np.ndarray, list[str]]:
    from PIL import Image

    crops = []
    for face in faces:
        with Image.open(_shared_file(shared, face["image"], face["image_sha256"], "image")) as im:
            crops.append(crop_face(im.convert("RGB"), spec, face["box"], [tuple(p) for p in face["landmarks"]]))
    stack = np.stack(crops)
    return stack, [sha256_bytes(c.tobytes()) for c in stack]


def regenerate_shared_face_set(name: str, backbone: str, shared: str | Path, weights: str, images: str,
                               limit: int = 32, seed: int = 0, root: Path | None = None,
                               overwrite: bool = False) -> Path:
    """A golden set over ../shared: ``limit`` LFW images (spread over people), their MTCNN box and landmarks, the
    hash of each crop, and the embeddings of the published ``weights``. Only hashes, detections and embeddings are
    written; the images and weights stay in ../shared and are read again by :func:`verify_shared_face_set`."""
    shared = Path(shared)
    dest = (root or reference_root()) / SHARED_SETS / name
    if dest.exists() and not overwrite:
        raise OutputExistsError(f"reference set {dest} exists", hint="pass --overwrite to regenerate it")
    weights_path = _shared_file(shared, weights, None, "weights")
    spec = default_spec(backbone)
    found = crop_images(spread_sample(list_images(shared / images), limit + 8, seed), spec, pick="center",
                        progress=False)
    faces = [{"image": str(Path(path).relative_to(shared)), "image_sha256": sha256_file(path),
              "box": [float(v) for v in face.box], "landmarks": [[float(x), float(y)] for x, y in face.landmarks]}
             for path, face in zip(found.paths[:limit], found.faces)]
    crops, hashes = _shared_crops(shared, spec, faces)
    for face, digest in zip(faces, hashes):
        face["crop_sha256"] = digest
    embeddings = _embed_with_spec(weights_path, spec, crops).astype(np.float32)
    with _staged(dest) as staging:
        np.save(staging / "embeddings.npy", embeddings, allow_pickle=False)
        np.save(staging / "distances.npy", distance_matrix(embeddings), allow_pickle=False)
        write_json_atomic(staging / "manifest.json", {
            "format": REFERENCE_FORMAT, "name": name, "kind": "shared-faces",
            "description": f"{backbone} ({weights}) on {len(faces)} LFW faces from ../shared: guards detection "
                           "hand-off, crop/alignment, normalisation and the model code",
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "spec": spec.to_dict(), "weights": {"path": weights, "sha256": sha256_file(weights_path)},
            "faces": faces, "tolerance": dict(DEFAULT_TOLERANCE), "tools": tool_versions(),
            "files": {f: {"sha256": sha256_file(staging / f)} for f in SHARED_FILES},
            "regenerate": f"python -m toolkit.reference regenerate-shared {name} --overwrite"})
    log.info("wrote reference set %s (%d faces)", dest, len(faces))
    return dest


def verify_shared_face_set(name: str, shared: str | Path, root: Path | None = None,
                           spec: ModelSpec | None = None) -> SharedVerifyResult:
    """Re-crop the stored faces from ../shared with today's code, embed them with the stored weights, compare.
    ``spec`` replaces the stored spec (to show that a changed contract is caught)."""
    folder = (root or reference_root()) / SHARED_SETS / name
    if not (folder / "manifest.json").is_file():
        raise InputError(f"no reference set {name!r} in {folder.parent}")
    manifest = read_json(folder / "manifest.json", "reference manifest")
    for file in SHARED_FILES:
        if sha256_file(folder / file) != manifest["files"][file]["sha256"]:
            raise InputError(f"reference set {name}: {file} does not match its manifest sha256")
    shared = Path(shared)
    weights = _shared_file(shared, manifest["weights"]["path"], manifest["weights"]["sha256"], "weights")
    use = spec or ModelSpec.from_dict(manifest["spec"])
    crops, hashes = _shared_crops(shared, use, manifest["faces"])
    emb = _embed_with_spec(weights, use, crops)
    golden = np.load(folder / "embeddings.npy", allow_pickle=False)
    tolerance = dict(DEFAULT_TOLERANCE) | dict(manifest.get("tolerance") or {})
    changed = sum(h != f["crop_sha256"] for h, f in zip(hashes, manifest["faces"]))
    return SharedVerifyResult(name=name, faces=len(hashes), crops_changed=int(changed), max_crop_diff=None,
                              max_embedding_diff=float(np.abs(emb - golden).max()),
                              max_distance_diff=float(np.abs(distance_matrix(emb) - np.load(
                                  folder / "distances.npy", allow_pickle=False)).max()),
                              tolerance=tolerance)


def _embed_with_spec(weights: Path, spec: ModelSpec, crops: np.ndarray) -> np.ndarray:
    """The published weights in ftk's EmbeddingModel under ``spec`` (its normalisation, channel order, L2)."""
    import torch

    from toolkit.models.face_model import EmbeddingModel

    backbone = create_backbone(spec)
    load_backbone_weights(backbone, load_state_dict_file(weights), weights.name)
    model = EmbeddingModel(backbone, spec).eval()
    with torch.no_grad():
        return model(torch.from_numpy(crops.astype(np.float32))).numpy()


def default_shared() -> Path:
    """``$FTK_SHARED`` or ``../shared`` beside the checkout."""
    env = os.environ.get("FTK_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolkit.reference", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    regen = sub.add_parser("regenerate", help=f"rewrite the {TINY_SET} set")
    regen.add_argument("name", choices=[TINY_SET])
    regen.add_argument("--overwrite", action="store_true")
    faces = sub.add_parser("regenerate-faces", help="write a set from real face crops and a checkpoint")
    faces.add_argument("name")
    faces.add_argument("--checkpoint", required=True)
    faces.add_argument("--images", required=True)
    faces.add_argument("--limit", type=int, default=32)
    faces.add_argument("--overwrite", action="store_true")
    shared = sub.add_parser("regenerate-shared", help=f"rewrite the {MOBILEFACENET_LFW} set from ../shared")
    shared.add_argument("name", choices=[MOBILEFACENET_LFW])
    shared.add_argument("--shared", default=None, help="the shared folder (default $FTK_SHARED or ../shared)")
    shared.add_argument("--limit", type=int, default=32)
    shared.add_argument("--overwrite", action="store_true")
    verify = sub.add_parser("verify", help="check the current code reproduces stored sets")
    verify.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.cmd == "regenerate":
            print(f"wrote {regenerate_tiny_synthetic(overwrite=args.overwrite)}")
        elif args.cmd == "regenerate-shared":
            path = regenerate_shared_face_set(args.name, "mobilefacenet", args.shared or default_shared(),
                                              "models/mobilefacenet-ms1m/mobilefacenet.pt",
                                              "data/lfw/lfw-deepfunneled", args.limit, overwrite=args.overwrite)
            print(f"wrote {path}")
        elif args.cmd == "regenerate-faces":
            print(f"wrote {regenerate_face_set(args.name, args.checkpoint, args.images, args.limit, overwrite=args.overwrite)}")
        else:
            failed = 0
            for name in args.names or list_reference_sets():
                r = verify_reference_set(name)
                failed += not r.passed
                print(f"{name}: {'ok' if r.passed else 'DRIFT'} (max embedding diff {r.max_embedding_diff:.2e}, "
                      f"max distance diff {r.max_distance_diff:.2e}, tolerance {r.tolerance})")
            shared_dir = reference_root() / SHARED_SETS
            for name in sorted(p.name for p in shared_dir.iterdir()) if shared_dir.is_dir() and not args.names else []:
                r = verify_shared_face_set(name, default_shared())
                failed += not r.passed
                print(f"{name}: {'ok' if r.passed else 'DRIFT'} ({r.faces} faces from ../shared, {r.crops_changed} "
                      f"crops changed, max embedding diff {r.max_embedding_diff:.2e}, max distance diff "
                      f"{r.max_distance_diff:.2e})")
            return 1 if failed else 0
    except ToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
