"""The faces CSV that ``ftk prepare`` writes and training/evaluation read.

Columns (the original workflow's format, extended): ``image_path,person_name,bbox,split_type,label`` plus
``landmarks`` and ``score``. ``image_path`` is relative to the image root; ``bbox`` is ``x1 y1 x2 y2`` and
``landmarks`` ``x1 y1 ... x5 y5`` (space-separated floats, image pixels). The label mapping and the image root are
written beside it in ``labels.json`` (JSON, never pickle).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import InputError
from toolkit.io import read_json, write_json_atomic, write_text_atomic

CSV_COLUMNS = ["image_path", "person_name", "bbox", "split_type", "label", "landmarks", "score"]
SPLITS = ("train", "val", "test", "holdout")


@dataclass(frozen=True)
class FaceRecord:
    image_path: str
    person_name: str
    bbox: tuple[float, float, float, float]
    split_type: str
    label: int
    landmarks: tuple[tuple[float, float], ...] | None = None
    score: float | None = None


def _floats(text: str, n: int, what: str, where: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        values = ()
    if len(values) != n:
        raise InputError(f"{where}: {what} must be {n} numbers, got {text!r}")
    return values


def labels_path_for(csv_path: str | Path) -> Path:
    csv_path = Path(csv_path)
    return csv_path.with_name("labels.json")


def faces_csv_text(records: list[FaceRecord]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        writer.writerow([
            r.image_path,
            r.person_name,
            " ".join(f"{v:.2f}" for v in r.bbox),
            r.split_type,
            r.label,
            "" if r.landmarks is None else " ".join(f"{x:.2f} {y:.2f}" for x, y in r.landmarks),
            "" if r.score is None else f"{r.score:.5f}",
        ])
    return buf.getvalue()


def labels_data(image_root: str | Path, class_names: list[str], labels_dir: str | Path) -> dict:
    """labels.json's content. ``image_root`` is stored relative to the labels file's folder (a CSV moved together
    with its images still finds them); when the images lie outside that folder, ``image_root_absolute`` too (a run
    folder moved to another depth still finds photos that did not move)."""
    resolved = Path(image_root).resolve()
    root = Path(os.path.relpath(resolved, Path(labels_dir).resolve())).as_posix()
    data = {"image_root": root, "classes": list(class_names),
            "label_of": {name: i for i, name in enumerate(class_names)}}
    if root.startswith(".."):
        data["image_root_absolute"] = str(resolved)
    return data


def write_faces_csv(path: str | Path, records: list[FaceRecord], image_root: str | Path, class_names: list[str]) -> None:
    path = Path(path)
    write_text_atomic(path, faces_csv_text(records))
    write_json_atomic(labels_path_for(path), labels_data(image_root, class_names, path.parent))


def read_faces_csv(path: str | Path) -> list[FaceRecord]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"faces CSV not found: {path}",
                         hint="create it with `ftk prepare IMAGE_DIR --out faces.csv`; the configs in train/configs/ "
                              "read runs/data/lfw_faces.csv, which train/runs.sh makes from LFW")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        required = {"image_path", "person_name", "bbox", "split_type", "label"}
        missing = required - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{path} is missing columns {sorted(missing)}; expected {CSV_COLUMNS}")
        records = []
        for n, row in enumerate(reader, start=2):
            where = f"{path}:{n}"
            landmarks = None
            if row.get("landmarks"):
                flat = _floats(row["landmarks"], 10, "landmarks", where)
                landmarks = tuple(zip(flat[0::2], flat[1::2]))
            try:
                label = int(row["label"])
            except ValueError:
                raise InputError(f"{where}: label must be an integer, got {row['label']!r}") from None
            records.append(FaceRecord(
                image_path=row["image_path"],
                person_name=row["person_name"],
                bbox=_floats(row["bbox"], 4, "bbox", where),  # type: ignore[arg-type]
                split_type=row["split_type"],
                label=label,
                landmarks=landmarks,
                score=float(row["score"]) if row.get("score") else None,
            ))
    return records


def image_root_for(csv_path: str | Path, override: str | Path | None = None) -> Path:
    """Where the CSV's relative image paths start: the override, else labels.json's image_root, else the CSV folder."""
    if override is not None:
        return Path(override)
    labels = labels_path_for(csv_path)
    if labels.is_file():
        data = read_json(labels, "labels file")
        root, absolute = data.get("image_root"), data.get("image_root_absolute")
        if root:
            relative = Path(root) if Path(root).is_absolute() else labels.parent / root  # relative: to labels.json
            if absolute and not relative.is_dir() and Path(absolute).is_dir():
                return Path(absolute)  # the CSV moved, its images did not
            return relative
    return Path(csv_path).parent


def read_class_names(csv_path: str | Path) -> list[str]:
    labels = labels_path_for(csv_path)
    if labels.is_file():
        return list(read_json(labels, "labels file")["classes"])
    records = read_faces_csv(csv_path)
    names: dict[int, str] = {r.label: r.person_name for r in records}
    return [names[i] for i in sorted(names)]
