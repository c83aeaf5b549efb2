"""The held-out parity sample: real faces an int8 export did not calibrate on, recorded so parity runs out of the box.

``ftk export --quantize int8`` reads real faces for calibration; it reads a few more, splits them by the content
hash of their image files (a byte-identical copy of a calibration photo can never be held out), calibrates on the
rest, and writes the held-out crops to ``parity_faces.npz`` beside the models. The manifest's ``parity_sample``
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

log = logging.getLogger(__name__)

# A held-out sample smaller than this is not worth recording (parity needs a few faces to say anything).
MIN_SAMPLE = 8
# Never hold out more than this share of the faces read: calibration quality comes first.
MAX_SHARE = 0.2


@dataclass
class ParitySample:
    images: np.ndarray  # uint8 [N, S, S, 3]
    labels: list[str]  # the image paths, as recorded
    description: str  # for reports: how many faces, from where, that calibration did not see them


def split_held_out(crops: FaceCrops, wanted: int, seed: int = 0) -> tuple[FaceCrops, FaceCrops, list[str]]:
    """(calibration, held out, the content hash of each crop's image); held out by image content hash, seeded."""
    digests = [sha256_file(Path(p)) for p in crops.paths]
    wanted = min(wanted, int(len(crops) * MAX_SHARE))
    if wanted < MIN_SAMPLE:
        return crops, _subset(crops, []), digests
    # Rank distinct contents by a seeded hash: the choice is reproducible and independent of file order.
    ranked = sorted(set(digests), key=lambda d: hashlib.sha256(f"{seed}:{d}".encode()).hexdigest())
    held: set[str] = set()
    count = 0
    for digest in ranked:
        if count >= wanted:
            break
        held.add(digest)
        count += digests.count(digest)
    rows_held = [i for i, d in enumerate(digests) if d in held]
    rows_calib = [i for i, d in enumerate(digests) if d not in held]
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
        "file": SAMPLE_NAME, "sha256": file_sha256, "faces": len(held), "source": str(source),
        "images": [{"path": p, "sha256": digests[p]} for p in held.paths],
        "calibration_images_sha256": sorted({digests[p] for p in calibration.paths}),
    }


def load_sample(model_path: Path, manifest: dict[str, Any] | None) -> ParitySample | None:
    """The sample recorded by the export of ``model_path`` (its verified manifest), or None when there is none.

    The file must be a plain name beside the model and match the manifest's sha256; a sample whose images overlap
    the calibration images (an edited manifest) is refused.
    """
    entry = (manifest or {}).get("parity_sample")
    if not entry:
        return None
    name = str(entry.get("file", ""))
    if not name or Path(name).name != name or name.startswith("."):
        raise ModelFileError(f"the manifest beside {model_path.name} names parity sample {name!r}, not a plain file "
                             "name", hint="export the model again")
    path = model_path.with_name(name)
    if not path.is_file():
        raise ModelFileError(f"{path} (the export's held-out parity faces) is missing",
                             hint="export again, or pass --faces DIR_OR_CSV")
    if sha256_file(path) != entry.get("sha256"):
        raise ModelFileError(f"{path} does not match the sha256 in its manifest", hint="export the model again")
    held = {img.get("sha256") for img in entry.get("images") or []}
    if held & set(entry.get("calibration_images_sha256") or []):
        raise ModelFileError(f"the manifest beside {model_path.name} lists held-out parity faces that were also "
                             "calibration faces", hint="export the model again")
    with np.load(path, allow_pickle=False) as data:
        images, labels = data["images"], [str(p) for p in data["paths"]]
    return ParitySample(images, labels, f"{len(labels)} held-out faces from {entry.get('source')} recorded by the "
                                        f"export (not among its {len(entry.get('calibration_images_sha256') or [])}"
                                        " calibration images)")
