"""``ftk prepare``: a ``Person_Name/*.jpg`` photo folder -> faces.csv (MTCNN box, landmarks, score, split, label).

Beside the CSV: ``labels.json`` (class names, image root; JSON, never pickle), ``rejects.csv`` (every image that was
not used and why: unreadable, corrupt, no face, too few images of that person) and ``contact_sheet.png`` (a sample
of the images with the chosen box and landmarks drawn, so a person can check the faces are right).

Splits are stratified per identity (each person's faces are divided train/val/test in the given proportions) and
seeded per identity, so adding a person does not reshuffle the others. ``--holdout-identities`` sets whole people
aside (split ``holdout``, label -1): identity-disjoint faces for verification on people the classifier never saw.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from toolkit.constants import DEFAULT_PICK
from toolkit.data.dataset import FaceRecord, faces_csv_text, labels_data, labels_path_for
from toolkit.data.detect import IMAGE_SUFFIXES, Detection, FaceDetector, pick_face
from toolkit.data.faces import check_pick
from toolkit.errors import InputError, NoFacesError
from toolkit.io import (
    atomic_outputs, atomic_path, check_free_space, check_outputs_free, check_writable_location, removed_if_failed,
    sha256_file, write_json_atomic, write_text_atomic,
)
from toolkit.wording import plural

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
HOLDOUT = "holdout"
HOLDOUT_LABEL = -1
REJECTS_NAME = "rejects.csv"
CONTACT_SHEET_NAME = "contact_sheet.png"


@dataclass
class PrepareResult:
    csv_path: Path
    labels_path: Path
    rejects_path: Path
    contact_sheet_path: Path | None
    n_images: int  # image files found
    n_faces: int  # rows written to the CSV
    n_rejected: int  # rows in rejects.csv
    n_identities: int  # classes (identities with a label, hold-out excluded)
    n_holdout_identities: int
    split_counts: dict[str, int] = field(default_factory=dict)
    reject_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    detect_seconds: float = 0.0
    images_per_second: float = 0.0  # all images found / total wall time


def parse_split(text: str | Sequence[float]) -> tuple[float, float, float]:
    """``"0.7,0.15,0.15"`` (train, val, test; ``"0.8,0.2"`` means no test) -> fractions summing to 1."""
    try:
        values = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        values = []
    if len(values) == 2:
        values.append(0.0)
    if len(values) != 3 or any(v < 0 or not math.isfinite(v) for v in values) or abs(sum(values) - 1) > 1e-6:
        raise InputError(f"--split must be TRAIN,VAL,TEST fractions summing to 1, e.g. 0.7,0.15,0.15; got {text!r}")
    if values[0] <= 0:
        raise InputError("--split needs a non-zero train fraction")
    return values[0], values[1], values[2]


def parse_holdout(text: str | float | int | None, n_identities: int) -> int:
    """``K`` (a count of people) or a fraction in (0, 1) -> the number of identities to hold out."""
    if text is None or str(text).strip() in ("", "0"):
        return 0
    raw = str(text).strip()
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"--holdout-identities must be a count (e.g. 10) or a fraction (e.g. 0.2), got {raw!r}") from None
    if value < 0 or not math.isfinite(value):
        raise InputError(f"--holdout-identities must be >= 0, got {raw}")
    if value < 1 and ("." in raw or "e" in raw.lower()):
        return max(1, int(round(value * n_identities)))
    if value != int(value):
        raise InputError(f"--holdout-identities must be a whole count or a fraction below 1, got {raw}")
    return int(value)


def split_counts_for(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Largest-remainder allocation of ``n`` faces to train/val/test; train keeps at least one."""
    quotas = [n * f for f in fractions]
    counts = [int(math.floor(q)) for q in quotas]
    order = sorted(range(3), key=lambda i: -(quotas[i] - counts[i]))  # stable: train, val, test on ties
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    if counts[0] == 0 and n > 0:
        donor = 1 if counts[1] >= counts[2] else 2
        counts[donor] -= 1
        counts[0] += 1
    return counts[0], counts[1], counts[2]


def scan_image_folder(image_dir: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """(person name -> image files under IMAGE_DIR/person/, sorted), and stray images directly in IMAGE_DIR."""
    people: dict[str, list[Path]] = {}
    stray: list[Path] = []
    for entry in sorted(image_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = sorted(p for p in entry.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not p.name.startswith("."))
            if files:
                people[entry.name] = files
        elif entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            stray.append(entry)
    return people, stray


def prepare(image_dir: str | Path, out: str | Path, min_images_per_person: int = 1,
            split: str | Sequence[float] = "0.7,0.15,0.15", holdout_identities: str | float | int | None = None,
            seed: int = 0, pick: str = DEFAULT_PICK, contact_sheet: int = 36, overwrite: bool = False,
            detector: FaceDetector | None = None, batch_size: int = 16, progress: bool = True) -> PrepareResult:
    """Detect the face in every image of ``image_dir`` and write the faces CSV and its companions (module doc)."""
    started = time.perf_counter()
    image_dir = Path(image_dir)
    out = Path(out)
    _check_options(pick, min_images_per_person, contact_sheet, batch_size)
    fractions = parse_split(split)
    if not image_dir.is_dir():
        raise InputError(f"image folder not found: {image_dir}", hint="give a folder of Person_Name/*.jpg folders")
    if out.suffix.lower() != ".csv":
        raise InputError(f"--out must be a .csv file, got {out}")
    people, stray = _scan_people(image_dir)
    n_images = sum(len(v) for v in people.values()) + len(stray)

    parse_holdout(holdout_identities, len(people))  # a malformed value fails now, not after the detection pass
    out_dir = out.parent if str(out.parent) else Path(".")
    check_writable_location(out_dir)  # created only when the outputs are written: a failed run leaves no folder
    rejects_path = out_dir / REJECTS_NAME
    sheet_path = out_dir / CONTACT_SHEET_NAME if contact_sheet > 0 else None
    outputs = [out, labels_path_for(out), rejects_path] + ([sheet_path] if sheet_path else [])
    check_outputs_free(outputs, overwrite)
    check_free_space(out_dir, _output_bytes(n_images, contact_sheet), f"ftk prepare's outputs for {n_images} images")
    with removed_if_failed(out_dir):
        return _prepare(image_dir, out, people, stray, n_images, outputs, min_images_per_person, fractions,
                        holdout_identities, seed, pick, contact_sheet, detector, batch_size, progress, started)


def _check_options(pick: str, min_images_per_person: int, contact_sheet: int, batch_size: int) -> None:
    check_pick(pick)
    if min_images_per_person < 1:
        raise InputError(f"--min-images-per-person must be >= 1, got {min_images_per_person}")
    if contact_sheet < 0:
        raise InputError(f"--contact-sheet must be >= 0, got {contact_sheet}")
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")


def _scan_people(image_dir: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """scan_image_folder, refusing a folder with no person folders or only one (a classifier needs 2 people)."""
    people, stray = scan_image_folder(image_dir)
    if not people:
        found = f" ({len(stray)} images directly in it, none in person folders)" if stray else ""
        raise NoFacesError(f"no images found in person folders under {image_dir}{found}",
                           hint="expected IMAGE_DIR/Person_Name/*.jpg (.jpeg/.png), one folder per person")
    if len(people) == 1:
        only = next(iter(people))
        raise InputError(f"{image_dir} has only one identity ({only}); a classifier needs at least 2 people",
                         hint="add a folder per person: IMAGE_DIR/Person_Name/*.jpg")
    return people, stray


def _output_bytes(n_images: int, contact_sheet: int) -> int:
    """A generous estimate of what prepare writes: CSV rows, rejects, labels, and the PNG contact sheet."""
    return 64 * 1024 + 300 * n_images + contact_sheet * 160 * 178 * 3 // 2


def _prepare(image_dir: Path, out: Path, people: dict[str, list[Path]], stray: list[Path], n_images: int,
             outputs: list[Path], min_images_per_person: int, fractions: tuple[float, float, float],
             holdout_identities, seed: int, pick: str, contact_sheet: int, detector: FaceDetector | None,
             batch_size: int, progress: bool, started: float) -> PrepareResult:
    rejects_path, sheet_path = outputs[2], (outputs[3] if len(outputs) > 3 else None)
    rejects: list[tuple[Path, str]] = [(p, "not inside a Person_Name folder") for p in stray]
    all_people = dict(people)
    people = _without_small_folders(people, min_images_per_person, rejects)
    faces, detect_seconds = _detect_faces(people, detector, batch_size, progress, pick, rejects)
    kept = _people_with_enough_faces(faces, min_images_per_person, rejects)
    if len(kept) < 2:
        raise NoFacesError(_too_few_message(image_dir, all_people, faces, kept, min_images_per_person, rejects),
                           hint="lower --min-images-per-person or add photos with visible faces")
    holdout = _holdout_people(kept, holdout_identities, seed)
    class_names = sorted(n for n in kept if n not in holdout)
    records = _face_records(image_dir, kept, holdout, class_names, fractions, seed)

    with atomic_outputs(outputs) as temps:  # all four files, or none of them
        temp = dict(zip(outputs, temps))
        if sheet_path is not None:
            write_contact_sheet(temp[sheet_path], image_dir, records, contact_sheet, seed)
        write_rejects(temp[rejects_path], image_dir, rejects)
        write_text_atomic(temp[out], faces_csv_text(records))
        write_json_atomic(temp[labels_path_for(out)], labels_data(image_dir, class_names, out.parent))

    seconds = time.perf_counter() - started
    log.info("prepared %d faces of %d identities from %d images in %.1fs", len(records), len(class_names), n_images,
             seconds)
    return PrepareResult(
        csv_path=out, labels_path=labels_path_for(out), rejects_path=rejects_path, contact_sheet_path=sheet_path,
        n_images=n_images, n_faces=len(records), n_rejected=len(rejects), n_identities=len(class_names),
        n_holdout_identities=len(holdout),
        split_counts={s: sum(r.split_type == s for r in records) for s in (*SPLIT_NAMES, HOLDOUT)},
        reject_reasons=_reject_reasons(rejects), seconds=seconds,
        detect_seconds=detect_seconds, images_per_second=n_images / seconds if seconds > 0 else 0.0,
    )


def _without_small_folders(people: dict[str, list[Path]], min_images: int,
                           rejects: list[tuple[Path, str]]) -> dict[str, list[Path]]:
    """People with fewer image files than the minimum cannot reach it: rejected without running the detector
    (on LFW with --min-images-per-person 20 this skips 10k of 13k images)."""
    kept = {}
    for name, paths in people.items():
        if len(paths) >= min_images:
            kept[name] = paths
        else:
            rejects.extend((path, f"{name} has {len(paths)} image files, fewer than --min-images-per-person "
                                  f"{min_images}") for path in paths)
    return kept


def _detect_faces(people: dict[str, list[Path]], detector: FaceDetector | None, batch_size: int, progress: bool,
                  pick: str, rejects: list[tuple[Path, str]]) -> tuple[dict[str, list[tuple[Path, Detection]]], float]:
    """One detection pass over every image (batched, cached per file): the ``pick`` face of each, per person,
    and the seconds the pass took (loading the detector not counted)."""
    detector = detector or FaceDetector()
    all_paths = [p for name in sorted(people) for p in people[name]]
    t0 = time.perf_counter()
    found = detector.detect_files(all_paths, batch_size=batch_size, progress=progress, desc="detecting faces")
    detect_seconds = time.perf_counter() - t0
    faces: dict[str, list[tuple[Path, Detection]]] = {name: [] for name in people}
    owner = {p: name for name, paths in people.items() for p in paths}
    for path, dets in zip(all_paths, found):
        if isinstance(dets, str):
            rejects.append((path, dets))
            continue
        size = (0, 0)
        if pick == "center" and len(dets) > 1:  # only the centre rule needs the image size
            from PIL import Image

            with Image.open(path) as im:
                size = im.size
        face = pick_face(dets, size, pick)
        if face is None:
            rejects.append((path, "no face detected"))
            continue
        faces[owner[path]].append((path, face))
    return faces, detect_seconds


def _people_with_enough_faces(faces: dict[str, list[tuple[Path, Detection]]], min_images: int,
                              rejects: list[tuple[Path, str]]) -> dict[str, list[tuple[Path, Detection]]]:
    kept = {}
    for name, items in faces.items():
        if len(items) >= min_images:
            kept[name] = items
        else:
            for path, _ in items:
                rejects.append((path, f"{name} has {len(items)} usable faces, fewer than --min-images-per-person "
                                      f"{min_images}"))
    return kept


def _holdout_people(kept: dict[str, list], holdout_identities, seed: int) -> set[str]:
    """Identity-disjoint hold-out: whole people set aside, seeded; at least 2 must stay to train on."""
    n_holdout = parse_holdout(holdout_identities, len(kept))
    if len(kept) - n_holdout < 2:
        raise InputError(f"holding out {n_holdout} of {len(kept)} identities leaves fewer than 2 to train on",
                         hint="hold out fewer identities")
    return set(random.Random(seed).sample(sorted(kept), n_holdout)) if n_holdout else set()


def _face_records(image_dir: Path, kept: dict[str, list[tuple[Path, Detection]]], holdout: set[str],
                  class_names: list[str], fractions: tuple[float, float, float], seed: int) -> list[FaceRecord]:
    """The CSV rows: per person (by name) and image (by file name), split per person, hold-out label -1."""
    label_of = {name: i for i, name in enumerate(class_names)}
    records: list[FaceRecord] = []
    for name in sorted(kept):
        items = sorted(kept[name], key=lambda item: item[0].name)
        if name in holdout:
            splits = [HOLDOUT] * len(items)
        else:
            splits = assign_splits([path for path, _ in items], fractions, f"{seed}:{name}")
        for (path, face), split_type in zip(items, splits):
            records.append(FaceRecord(
                image_path=path.relative_to(image_dir).as_posix(), person_name=name, bbox=face.box,
                split_type=split_type, label=label_of.get(name, HOLDOUT_LABEL), landmarks=face.landmarks,
                score=face.score,
            ))
    return records


def _reject_reasons(rejects: list[tuple[Path, str]]) -> dict[str, int]:
    """How many rejects per reason, with the per-file details (paths, counts) folded into one key each."""
    reasons: dict[str, int] = {}
    for _, reason in rejects:
        key = reason.split(":")[0] if reason.startswith("unreadable") else (
            "too few faces for --min-images-per-person" if "--min-images-per-person" in reason else reason)
        reasons[key] = reasons.get(key, 0) + 1
    return reasons


def assign_splits(paths: list[Path], fractions: tuple[float, float, float], seed_key: str) -> list[str]:
    """One person's train/val/test split per image (seeded). Byte-identical files count once and share a split:
    a duplicate photo in both train and test would leak the answer into the test."""
    digests = [sha256_file(path) for path in paths]
    unique = list(dict.fromkeys(digests))
    n_train, n_val, n_test = split_counts_for(len(unique), fractions)
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    random.Random(seed_key).shuffle(splits)
    split_of = dict(zip(unique, splits))
    return [split_of[d] for d in digests]


def _too_few_message(image_dir, people, faces, kept, min_images, rejects) -> str:
    """Counts at each step: images, folders with enough images (the only ones detected), faces found in them."""
    n_images = sum(len(paths) for paths in people.values())
    detected = sum(len(items) for items in faces.values())
    examples = "; ".join(f"{p.name}: {r}" for p, r in rejects[:2] if "--min-images" not in r)
    msg = (f"{image_dir}: only {len(kept)} of {plural(len(people), 'identity', 'identities')} have >= {min_images} "
           f"usable faces ({plural(n_images, 'image')} in {plural(len(people), 'person folder')}; "
           f"{len(faces)} of those folders have >= {min_images} images, and detection found "
           f"{plural(detected, 'face')} in them); a classifier needs at least 2 people")
    return msg + (f" (e.g. {examples})" if examples else "")


def write_rejects(path: Path, image_dir: Path, rejects: list[tuple[Path, str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image_path", "reason"])
    for p, reason in sorted(rejects, key=lambda r: str(r[0])):
        try:
            rel = p.relative_to(image_dir).as_posix()
        except ValueError:
            rel = str(p)
        writer.writerow([rel, reason])
    write_text_atomic(path, buf.getvalue())


def write_contact_sheet(path: Path, image_dir: Path, records: list[FaceRecord], count: int, seed: int = 0,
                        tile: int = 160, columns: int = 6) -> Path:
    """A grid of up to ``count`` images (spread over identities) with the chosen box and 5 landmarks drawn."""
    from PIL import Image, ImageDraw, ImageFont

    by_person: dict[str, list[FaceRecord]] = {}
    for r in records:
        by_person.setdefault(r.person_name, []).append(r)
    rng = random.Random(seed)
    order = sorted(by_person)
    rng.shuffle(order)
    for name in order:
        rng.shuffle(by_person[name])
    sample: list[FaceRecord] = []
    depth = 0
    while len(sample) < count and any(depth < len(v) for v in by_person.values()):
        for name in order:
            if depth < len(by_person[name]) and len(sample) < count:
                sample.append(by_person[name][depth])
        depth += 1
    caption_h = 18
    columns = max(1, min(columns, len(sample)))
    rows = math.ceil(len(sample) / columns)
    sheet = Image.new("RGB", (columns * tile, rows * (tile + caption_h)), "white")
    draw_sheet = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, r in enumerate(sample):
        with Image.open(image_dir / r.image_path) as im:
            im = im.convert("RGB")
        scale = tile / max(im.size)
        thumb = im.resize((max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale))), Image.BILINEAR)
        draw = ImageDraw.Draw(thumb)
        x1, y1, x2, y2 = (v * scale for v in r.bbox)
        draw.rectangle([x1, y1, x2, y2], outline=(0, 220, 0), width=2)
        for lx, ly in r.landmarks or ():
            draw.ellipse([lx * scale - 2, ly * scale - 2, lx * scale + 2, ly * scale + 2], fill=(255, 40, 40))
        col, row = i % columns, i // columns
        ox, oy = col * tile, row * (tile + caption_h)
        sheet.paste(thumb, (ox + (tile - thumb.size[0]) // 2, oy + (tile - thumb.size[1]) // 2))
        caption = r.person_name.replace("_", " ")
        if len(caption) > 22:
            caption = caption[:21] + ".."
        text = f"{caption} {r.score or 0:.2f}"
        try:
            draw_sheet.text((ox + 4, oy + tile + 3), text, fill=(0, 0, 0), font=font)
        except UnicodeEncodeError:  # PIL's fallback bitmap font is latin-1 only
            text = text.encode("ascii", "replace").decode()
            draw_sheet.text((ox + 4, oy + tile + 3), text, fill=(0, 0, 0), font=font)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path
