"""The held-out parity sample: real faces an int8 export did not calibrate on, recorded so parity runs out of the box.

``ftk export --quantize int8`` reads real faces for calibration; it reads up to ``--parity-faces`` more, holds that
many out by the content hash of their image files (a byte-identical copy of a calibration photo can never be held
out), calibrates on up to ``--calibration-limit`` of the rest, and writes the held-out crops to ``parity_faces.npz``
beside the models. Calibration comes first: a source without faces to spare beyond the limit gets no sample. The manifest's ``parity_sample``
names that file, its sha256, and the sha256 of every held-out and every calibration image, so anyone can check that
the two sets are disjoint. ``ftk parity-check MODEL --checkpoint CKPT`` without ``--faces`` uses it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.constants import PARITY_SAMPLE_NAME as SAMPLE_NAME
from toolkit.data.faces import FaceCrops
from toolkit.errors import ModelFileError
from toolkit.io import atomic_path, sha256_file
from toolkit.manifest import is_plain_file_name

log = logging.getLogger(__name__)

# A held-out sample smaller than this is not worth recording (parity needs a few faces to say anything).
MIN_SAMPLE = 8


@dataclass
class ParitySample:
    images: np.ndarray  # uint8 [N, S, S, 3]
    labels: list[str]  # the image paths, as recorded
    description: str  # for reports: how many faces, from where, that calibration did not see them


def split_held_out(crops: FaceCrops, calibration_limit: int, wanted: int, seed: int = 0
                   ) -> tuple[FaceCrops, FaceCrops, list[str]]:
    """(calibration: at most ``calibration_limit`` faces, held out: the faces read beyond it, up to ``wanted``,
    the content hash of each crop's image). Held out by image content hash, seeded; none when fewer than
    :data:`MIN_SAMPLE` can be spared."""
    digests = [sha256_file(Path(p)) for p in crops.paths]
    spare = min(wanted, len(crops) - calibration_limit)
    held: set[str] = set()
    if spare >= MIN_SAMPLE:
        # Rank distinct contents by a seeded hash: the choice is reproducible and independent of file order.
        ranked = sorted(set(digests), key=lambda d: hashlib.sha256(f"{seed}:{d}".encode()).hexdigest())
        count = 0
        for digest in ranked:
            if count >= spare:
                break
            held.add(digest)
            count += digests.count(digest)
    rows_held = [i for i, d in enumerate(digests) if d in held]
    rows_calib = [i for i, d in enumerate(digests) if d not in held][:calibration_limit]
    return _subset(crops, rows_calib), _subset(crops, rows_held), digests


def _subset(crops: FaceCrops, rows: list[int]) -> FaceCrops:
    return FaceCrops(crops.images[rows], [crops.paths[i] for i in rows])


def write_sample(path: Path, held: FaceCrops) -> str:
    """Write the held-out crops (no pickle: uint8 images and unicode paths); returns the file's sha256."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, images=held.images, paths=np.array(held.paths, dtype=str))
    return sha256_file(path)


def manifest_entry(held: FaceCrops, calibration: FaceCrops, digests: dict[str, str], file_sha256: str,
                   source: str | Path) -> dict[str, Any]:
    return {
        "file": SAMPLE_NAME, "sha256": file_sha256, "faces": len(held), "source": str(source),  # as the manifest has it
        "images": [{"path": p, "sha256": digests[p]} for p in held.paths],
        "calibration_images_sha256": sorted({digests[p] for p in calibration.paths}),
    }


def load_sample(model_path: Path, manifest: dict[str, Any] | None) -> ParitySample | None:
    """The sample recorded by the export of ``model_path`` (its verified manifest), or None when there is none.

    The file must be a plain name beside the model and match the manifest's sha256; a malformed entry or file, or a
    sample whose images overlap the calibration images (an edited manifest), is refused (ModelFileError).
    """
    entry = (manifest or {}).get("parity_sample")
    if not entry:
        return None
    held, calibration = _check_entry(entry, model_path)
    path = model_path.with_name(entry["file"])
    if not path.is_file():
        raise ModelFileError(f"{path} (the export's held-out parity faces) is missing",
                             hint="export again, or pass --faces DIR_OR_CSV")
    if sha256_file(path) != entry.get("sha256"):
        raise ModelFileError(f"{path} does not match the sha256 in its manifest", hint="export the model again")
    if held & calibration:
        raise ModelFileError(f"the manifest beside {model_path.name} lists held-out parity faces that were also "
                             "calibration faces", hint="export the model again")
    images, labels = _read_sample_file(path)
    return ParitySample(images, labels, f"{len(labels)} held-out faces from {entry.get('source')} recorded by the "
                                        f"export (not among its {len(calibration)} calibration images)")


def _check_entry(entry: Any, model_path: Path) -> tuple[set[str], set[str]]:
    """(held-out image hashes, calibration image hashes) of a well-formed ``parity_sample``; else ModelFileError."""
    def bad(why: str) -> ModelFileError:
        return ModelFileError(f"the manifest beside {model_path.name} has a malformed parity_sample: {why}",
                              hint="export the model again")

    if not isinstance(entry, dict):
        raise bad(f"expected an object, got {type(entry).__name__}")

    name = entry.get("file")
    if not is_plain_file_name(name) or name.startswith("."):  # and no hidden file: ftk names it parity_faces.npz
        raise bad(f"file {name!r} is not a plain file name")
    images, calibration = entry.get("images"), entry.get("calibration_images_sha256")
    if not isinstance(images, list) or not all(isinstance(i, dict) and isinstance(i.get("sha256"), str)
                                               for i in images):
        raise bad("images must be a list of {path, sha256}")
    if not isinstance(calibration, list) or not all(isinstance(d, str) for d in calibration):
        raise bad("calibration_images_sha256 must be a list of hashes")
    return {i["sha256"] for i in images}, set(calibration)


def _read_sample_file(path: Path) -> tuple[np.ndarray, list[str]]:
    """uint8 [N, S, S, 3] crops and N labels from the npz, or ModelFileError (never pickle)."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as data:
            images, paths = data["images"], data["paths"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path} is not a parity sample ftk wrote: {exc}", hint="export the model again") \
            from None
    if (images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2]
            or paths.ndim != 1 or len(paths) != len(images) or paths.dtype.kind != "U"):
        raise ModelFileError(f"{path} holds {images.dtype} {images.shape} images and {paths.shape} paths, not "
                             "uint8 [N, S, S, 3] crops with N paths", hint="export the model again")
    return images, [str(p) for p in paths]
