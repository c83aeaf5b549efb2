"""ftk prepare on real LFW photos with real MTCNN: CSV, splits, hold-out, rejects, contact sheet, bad folders."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from toolkit.data.dataset import read_class_names, read_faces_csv
from toolkit.errors import InputError, NoFacesError, OutputExistsError
from toolkit.prepare import parse_holdout, parse_split, prepare, split_counts_for

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def photo_folder(face_folder, tmp_path_factory):
    """A copy of the LFW face folder plus a truncated JPEG, a non-image .jpg and a face-less picture."""
    root = tmp_path_factory.mktemp("photos") / "people"
    shutil.copytree(face_folder, root)
    person = sorted(p for p in root.iterdir())[0]
    good = sorted(person.glob("*.jpg"))[0]
    (person / "truncated.jpg").write_bytes(good.read_bytes()[:2500])
    (person / "not_an_image.jpg").write_bytes(b"this is not a JPEG")
    smooth = np.linspace(0, 255, 250 * 250 * 3).reshape(250, 250, 3).astype(np.uint8)
    Image.fromarray(smooth).save(person / "no_face.png")
    (root / "stray.jpg").write_bytes(good.read_bytes())
    return root


@pytest.fixture(scope="module")
def prepared(photo_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "faces.csv"
    return prepare(photo_folder, out, split="0.5,0.25,0.25", seed=3, contact_sheet=8, progress=False)


def test_csv_splits_labels(prepared, photo_folder):
    records = read_faces_csv(prepared.csv_path)
    people = sorted(p.name for p in photo_folder.iterdir() if p.is_dir())
    assert read_class_names(prepared.csv_path) == people
    assert prepared.n_identities == len(people) == len({r.person_name for r in records})
    assert prepared.n_images == 6 * len(people) + 4
    # Real MTCNN finds the face in (nearly) every LFW image; boxes sit in the middle of the 250x250 image.
    assert prepared.n_faces >= 6 * len(people) - 2
    for r in records:
        assert (photo_folder / r.image_path).is_file() and r.image_path.startswith(r.person_name + "/")
        x1, y1, x2, y2 = r.bbox
        assert 40 < (x1 + x2) / 2 < 210 and 40 < (y1 + y2) / 2 < 210 and x2 - x1 > 40
        assert r.score > 0.9 and len(r.landmarks) == 5
        assert r.label == people.index(r.person_name)
    # Stratified: 6 faces per person at 0.5/0.25/0.25 -> 3 train, 2 val, 1 test... by largest remainder: 3/1.5/1.5.
    for name in people:
        mine = [r.split_type for r in records if r.person_name == name]
        if len(mine) == 6:
            assert sorted(mine) == sorted(["train"] * 3 + ["val"] * 2 + ["test"])
    assert prepared.split_counts["train"] > prepared.split_counts["test"] > 0
    assert prepared.images_per_second > 0


def test_rejects_listed_with_reasons(prepared):
    with open(prepared.rejects_path, newline="") as fh:
        rows = {r["image_path"]: r["reason"] for r in csv.DictReader(fh)}
    by_name = {k.split("/")[-1]: v for k, v in rows.items()}
    assert "truncated" in by_name["truncated.jpg"] and "unreadable" in by_name["truncated.jpg"]
    assert "unreadable" in by_name["not_an_image.jpg"]
    assert by_name["no_face.png"] == "no face detected"
    assert by_name["stray.jpg"] == "not inside a Person_Name folder"
    assert prepared.n_rejected == len(rows) == prepared.n_images - prepared.n_faces


def test_contact_sheet(prepared):
    with Image.open(prepared.contact_sheet_path) as im:
        assert im.format == "PNG"
        w, h = im.size
        arr = np.asarray(im.convert("RGB"))
    assert w == 6 * 160 and h == 2 * (160 + 18)  # 8 images, 6 per row
    # The boxes are drawn in pure-ish green.
    assert ((arr[..., 1] > 200) & (arr[..., 0] < 40) & (arr[..., 2] < 40)).sum() > 500


def test_holdout_min_images_and_overwrite(prepared, photo_folder, tmp_path):
    out = tmp_path / "faces.csv"
    # Detections are cached: this second pass over the same files costs no MTCNN time.
    result = prepare(photo_folder, out, holdout_identities="2", min_images_per_person=6, seed=1, contact_sheet=0,
                     progress=False)
    records = read_faces_csv(out)
    holdout = {r.person_name for r in records if r.split_type == "holdout"}
    assert len(holdout) == 2 and result.n_holdout_identities == 2
    assert all(r.label == -1 for r in records if r.split_type == "holdout")
    assert set(read_class_names(out)).isdisjoint(holdout)
    assert result.contact_sheet_path is None
    with open(result.rejects_path, newline="") as fh:
        reasons = [r["reason"] for r in csv.DictReader(fh)]
    # The person with broken files still has 6 good faces; nobody is dropped by the filter at 6.
    assert not any("--min-images-per-person" in r for r in reasons)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        prepare(photo_folder, out, contact_sheet=0, progress=False)
    # Only 6 faces per person: a 7-image minimum leaves nobody -> a clear error, nothing written.
    fresh = tmp_path / "fresh" / "faces.csv"
    with pytest.raises(NoFacesError, match="identities have >= 7 usable faces"):
        prepare(photo_folder, fresh, min_images_per_person=7, contact_sheet=0, progress=False)
    assert not fresh.exists() and not (fresh.parent / "rejects.csv").exists()


def test_empty_and_single_identity_folders(tmp_path, face_folder):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoFacesError, match="no images found"):
        prepare(tmp_path / "empty", tmp_path / "a.csv", progress=False)
    one = tmp_path / "one"
    shutil.copytree(next(p for p in face_folder.iterdir() if p.is_dir()), one / "Only_Person")
    with pytest.raises(InputError, match="only one identity .*a classifier needs at least 2 people"):
        prepare(one, tmp_path / "b.csv", progress=False)
    with pytest.raises(InputError, match="image folder not found"):
        prepare(tmp_path / "missing", tmp_path / "c.csv", progress=False)
    assert not list(tmp_path.glob("*.csv"))


def test_cli_error_is_one_line_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli", "prepare", str(tmp_path / "empty"), "--out",
                           str(tmp_path / "f.csv")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: no images found") and len(proc.stderr.strip().splitlines()) == 1


def test_split_and_holdout_parsing():
    assert parse_split("0.7,0.15,0.15") == (0.7, 0.15, 0.15)
    assert parse_split("0.8,0.2") == (0.8, 0.2, 0.0)
    with pytest.raises(InputError, match="summing to 1"):
        parse_split("0.7,0.2,0.2")
    assert split_counts_for(6, (0.7, 0.15, 0.15)) == (4, 1, 1)
    assert split_counts_for(2, (0.7, 0.15, 0.15)) == (2, 0, 0)
    assert split_counts_for(20, (0.7, 0.15, 0.15)) == (14, 3, 3)
    assert parse_holdout("0.25", 8) == 2 and parse_holdout("3", 8) == 3 and parse_holdout(None, 8) == 0
    with pytest.raises(InputError, match="count"):
        parse_holdout("many", 8)
