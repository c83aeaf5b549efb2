"""Shared, cached set-up for the export/parity tests: real LFW crops via a faces CSV and one tiny export.

Exporting (even the tiny model) takes seconds of real litert-torch conversion, so the export is made once per
session and copied where a test needs to modify it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# LFW deep-funneled images are 250x250 with the face centred; this box (x1 y1 x2 y2) is the face, so the CSV path
# of load_face_crops gives real face crops without running MTCNN (slow on a busy 2-core machine).
LFW_FACE_BOX = (78.0, 65.0, 171.0, 189.0)  # median MTCNN box over 318 LFW images
CSV_PEOPLE = ["Colin_Powell", "George_W_Bush", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder",
              "Ariel_Sharon", "Hugo_Chavez", "Jean_Chretien", "John_Ashcroft", "Junichiro_Koizumi"]

_cache: dict[str, Path] = {}


def lfw_faces_csv(lfw_dir: Path, root: Path, per_person: int = 5, skip: int = 6) -> Path:
    """A faces CSV (+ labels.json) over real LFW images: 10 people x ``per_person`` images, fixed face box.

    The first ``skip`` images of each person are left out, so these never overlap conftest's ``face_folder``
    (the first 6 images of its people) and can serve as held-out faces."""
    from toolkit.data.dataset import FaceRecord, write_faces_csv

    key = f"csv:{lfw_dir}:{per_person}:{skip}"
    if key in _cache:
        return _cache[key]
    records = []
    for label, person in enumerate(CSV_PEOPLE):
        for image in sorted((lfw_dir / person).glob("*.jpg"))[skip : skip + per_person]:
            records.append(FaceRecord(image_path=f"{person}/{image.name}", person_name=person, bbox=LFW_FACE_BOX,
                                      split_type="train", label=label))
    path = root / "faces.csv"
    write_faces_csv(path, records, lfw_dir, CSV_PEOPLE)
    _cache[key] = path
    return path


def reference_checkpoint(root: Path) -> Path:
    """A copy of the stored tiny reference checkpoint (so parity can also run on the reference inputs)."""
    from toolkit.reference import TINY_SET, reference_root

    key = "ref-ckpt"
    if key not in _cache:
        dest = root / "tiny_reference.pt"
        shutil.copyfile(reference_root() / TINY_SET / "checkpoint.pt", dest)
        _cache[key] = dest
    return _cache[key]


def tiny_export(root: Path, checkpoint: Path, calibration: Path) -> Path:
    """float32 + int8 export of the tiny checkpoint, made once per session (treat it as read-only)."""
    from toolkit.export import export_model

    key = f"export:{checkpoint}"
    if key not in _cache:
        out = root / "tiny_export"
        # 50 faces: 40 to calibrate on, the 10 beyond the limit held out for parity (toolkit.held_out).
        export_model(checkpoint, out, quantize="int8", calibration=calibration, calibration_limit=40,
                     progress=False)
        _cache[key] = out
    return _cache[key]


def copy_export(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``ftk ARGS`` in-process through the real entry point; returns (exit code, stdout, stderr)."""
    from toolkit.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(stderr: str) -> list[str]:
    """The lines ftk itself printed as errors (libraries may log warnings to stderr too)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]
