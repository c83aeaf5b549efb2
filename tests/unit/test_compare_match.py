"""ftk compare / ftk match on real LFW faces (MTCNN, the real crop, real embedders, a real .tflite)."""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from toolkit.compare import compare_images
from toolkit.reports import resolve_threshold
from toolkit.embedders import load_embedder
from toolkit.errors import InputError, NoFacesError, OutputExistsError
from toolkit.match import (Gallery, check_gallery_model, enroll_gallery, load_gallery, match_probe, rank_people,
                           save_gallery)


# --- fixtures -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def detector():
    from toolkit.data.detect import FaceDetector

    return FaceDetector()  # one MTCNN for the module; detections are cached per image for the session


@pytest.fixture(scope="module")
def tiny_embedder(tiny_checkpoint):
    return load_embedder(tiny_checkpoint)


@pytest.fixture(scope="module")
def bad_images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    grey = root / "plain_grey.jpg"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(grey)
    corrupt = root / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 this is not really a jpeg")
    return {"grey": grey, "corrupt": corrupt, "missing": root / "does_not_exist.jpg"}


@pytest.fixture(scope="module")
def tiny_gallery(face_folder, tiny_embedder, detector) -> Gallery:
    return enroll_gallery(face_folder, tiny_embedder, detector, progress=False)


def images_of(face_folder: Path, person: str) -> list[Path]:
    return sorted((face_folder / person).glob("*.jpg"))


def save_tiny_checkpoint(path: Path, seed: int, embedding_dim: int | None = None) -> Path:
    import torch

    from toolkit.checkpoint import CheckpointMeta, save_checkpoint
    from toolkit.models.face_model import FaceModel
    from toolkit.models.registry import default_spec

    torch.manual_seed(seed)
    spec = default_spec("tiny", embedding_dim=embedding_dim)
    model = FaceModel(spec, 0).eval()
    save_checkpoint(path, model, CheckpointMeta(spec=spec, weights_source=f"random seed {seed}"))
    return path


def write_eval_report(model: Path, sha256: str, thresholds: dict[str, float]) -> Path:
    """The report ``ftk evaluate`` leaves beside a model (keys documented in toolkit/reports.py)."""
    out = model.with_name(model.stem + ".eval") / "report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model_sha256": sha256, "model_path": str(model),
                               "verification": {"thresholds_at_far": thresholds}}))
    return out


# --- compare ------------------------------------------------------------------------------------------------------
def test_compare_reports_bad_images_and_keeps_the_others(face_folder, tiny_embedder, detector, bad_images):
    good = images_of(face_folder, "Colin_Powell")[:2] + images_of(face_folder, "Tony_Blair")[:1]
    paths = [good[0], bad_images["grey"], good[1], bad_images["corrupt"], bad_images["missing"], good[2]]
    result = compare_images(paths, tiny_embedder, detector=detector)

    assert result.images == [str(p) for p in good]
    reasons = dict(result.failures)
    assert set(reasons) == {str(bad_images[k]) for k in ("grey", "corrupt", "missing")}
    assert reasons[str(bad_images["grey"])] == "no face detected"
    assert "unreadable" in reasons[str(bad_images["corrupt"])]
    assert "unreadable" in reasons[str(bad_images["missing"])]

    matrix = np.array(result.scores)
    assert matrix.shape == (3, 3)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-5)
    assert len(result.pairs) == 3 and all(p.verdict is None for p in result.pairs)
    # No model path, no threshold: say so rather than invent one.
    assert result.threshold is None and "no calibrated threshold" in result.threshold_note

    with pytest.raises(NoFacesError, match="plain_grey.jpg: no face detected"):
        compare_images([good[0], bad_images["grey"]], tiny_embedder, detector=detector)
    with pytest.raises(InputError, match="at least two"):
        compare_images([good[0]], tiny_embedder, detector=detector)


def test_compare_threshold_comes_from_this_models_report(tmp_path, tiny_checkpoint, face_folder, detector):
    model = tmp_path / "tiny.pt"
    shutil.copy(tiny_checkpoint, model)
    embedder = load_embedder(model)

    choice = resolve_threshold(model)
    assert choice.value is None and "no evaluation report" in choice.note and "--threshold" in choice.note

    report = write_eval_report(model, embedder.model_sha256, {"0.01": 0.31, "0.001": 0.42})
    choice = resolve_threshold(model)
    assert (choice.value, choice.source, choice.far) == (0.42, "report", 1e-3)
    assert resolve_threshold(model, far=1e-2).value == 0.31
    missing_far = resolve_threshold(model, far=1e-4)
    assert missing_far.value is None and "0.001" in missing_far.note and "0.01" in missing_far.note
    assert resolve_threshold(model, threshold=0.77).value == 0.77  # --threshold wins
    with pytest.raises(InputError, match="cosine"):
        resolve_threshold(model, threshold=3.0)

    paths = images_of(face_folder, "Serena_Williams")[:2] + images_of(face_folder, "Ariel_Sharon")[:1]
    result = compare_images(paths, embedder, model_path=model, detector=detector)
    assert result.threshold == 0.42 and result.threshold_source == "report"
    for pair in result.pairs:
        assert pair.verdict == ("same" if pair.score >= 0.42 else "different")

    # A report computed on another version of the file is not this model's calibration.
    write_eval_report(model, "0" * 64, {"0.001": 0.42})
    assert resolve_threshold(model).value is None
    assert report.is_file()


def test_compare_plot_is_a_png(tmp_path, face_folder, tiny_embedder, detector):
    paths = images_of(face_folder, "George_W_Bush")[:2] + images_of(face_folder, "Gerhard_Schroeder")[:1]
    out = tmp_path / "grid.png"
    result = compare_images(paths, tiny_embedder, threshold=0.5, plot=out, detector=detector)
    assert result.plot == str(out)
    with Image.open(out) as im:
        assert im.format == "PNG" and min(im.size) > 200
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temp left behind


# --- match --------------------------------------------------------------------------------------------------------
def test_rank_people_is_the_apps_rule():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 6, size=40)
    person_index = np.repeat(np.arange(40), counts)
    emb = rng.normal(size=(len(person_index), 32)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    query = emb[7] + 0.1 * rng.normal(size=32).astype(np.float32)
    query /= np.linalg.norm(query)
    starts = np.flatnonzero(np.r_[True, np.diff(person_index) != 0])

    people, scores, rows = rank_people(emb, starts, query, top_k=5)
    all_scores = emb @ query
    brute = np.array([all_scores[person_index == p].max() for p in range(40)])
    assert people[0] == person_index[int(np.argmax(all_scores))]  # the app: best over every enrolled row
    assert rows[0] == int(np.argmax(all_scores))
    np.testing.assert_allclose(scores, np.sort(brute)[::-1][:5], rtol=1e-6)
    assert all(person_index[r] == p for r, p in zip(rows, people))
    assert len(rank_people(emb, starts, query, top_k=100)[0]) == 40


def test_gallery_round_trip_and_probe_of_an_enrolled_image(tmp_path, tiny_gallery, tiny_embedder, face_folder,
                                                           detector):
    gallery = tiny_gallery
    people = sorted(p.name for p in face_folder.iterdir())
    assert gallery.names == people
    assert len(gallery.embeddings) == len(gallery.paths) >= 5 * len(people)
    assert gallery.model_sha256 == tiny_embedder.model_sha256 and gallery.dim == tiny_embedder.spec.embedding_dim

    out = save_gallery(gallery, tmp_path / "gallery.npz")
    with np.load(out, allow_pickle=False) as raw:  # plain arrays, no pickle
        assert raw["embeddings"].shape == gallery.embeddings.shape
    loaded = load_gallery(out)
    np.testing.assert_array_equal(loaded.embeddings, gallery.embeddings)
    np.testing.assert_array_equal(loaded.person_index, gallery.person_index)
    assert (loaded.names, loaded.paths, loaded.model_sha256, loaded.spec) == \
        (gallery.names, gallery.paths, gallery.model_sha256, gallery.spec)
    with pytest.raises(OutputExistsError):
        save_gallery(gallery, out)
    with pytest.raises(InputError, match=".npz"):
        save_gallery(gallery, tmp_path / "gallery.bin")

    # An enrolled image as probe: the same crop, the same embedding, so its own person is first at cosine 1.
    probe = Path(gallery.paths[gallery.person_starts[2] + 1])
    result = match_probe(probe, loaded, tiny_embedder, threshold=0.5, top_k=3, detector=detector)
    assert result.top[0].name == probe.parent.name and result.top[0].image == str(probe)
    assert result.top[0].score == pytest.approx(1.0, abs=1e-5)
    assert [c.score for c in result.top] == sorted((c.score for c in result.top), reverse=True)
    assert len(result.top) == 3 and result.accepted is True and result.match == probe.parent.name
    assert result.embed_ms > 0 and result.search_ms > 0 and result.gallery_embeddings == len(gallery.embeddings)
    undecided = match_probe(probe, loaded, tiny_embedder, threshold=None, top_k=50, detector=detector)
    assert undecided.accepted is None and undecided.match is None and len(undecided.top) == len(people)


def test_enrolment_reports_bad_images(tmp_path, face_folder, tiny_embedder, detector, bad_images):
    root = tmp_path / "gallery"
    for person in ("Tony_Blair", "Colin_Powell"):
        (root / person).mkdir(parents=True)
        for image in images_of(face_folder, person)[:2]:
            shutil.copy(image, root / person)
    shutil.copy(bad_images["grey"], root / "Tony_Blair" / "grey.jpg")
    shutil.copy(bad_images["corrupt"], root / "Colin_Powell" / "corrupt.jpg")
    (root / "Nobody").mkdir()
    shutil.copy(bad_images["grey"], root / "Nobody" / "grey.jpg")
    shutil.copy(bad_images["grey"], root / "loose.jpg")

    gallery = enroll_gallery(root, tiny_embedder, detector, progress=False)
    assert gallery.names == ["Colin_Powell", "Tony_Blair"]  # Nobody had no face: left out, not fatal
    assert len(gallery.embeddings) == 4
    reasons = {Path(p).relative_to(root).as_posix(): why for p, why in gallery.failures}
    assert reasons["Tony_Blair/grey.jpg"] == "no face detected"
    assert "unreadable" in reasons["Colin_Powell/corrupt.jpg"]
    assert reasons["Nobody/grey.jpg"] == "no face detected"
    assert "Person_Name" in reasons["loose.jpg"]

    with pytest.raises(NoFacesError, match="no face"):
        match_probe(bad_images["grey"], gallery, tiny_embedder, 0.5, detector=detector)


def test_gallery_from_another_model_is_refused(tmp_path, tiny_gallery, face_folder, detector):
    probe = images_of(face_folder, "Tony_Blair")[0]
    other = load_embedder(save_tiny_checkpoint(tmp_path / "other.pt", seed=1))
    with pytest.raises(InputError, match="another model") as err:
        match_probe(probe, tiny_gallery, other, 0.5, detector=detector)
    assert "re-enrol" in str(err.value)

    narrower = load_embedder(save_tiny_checkpoint(tmp_path / "narrow.pt", seed=0, embedding_dim=8))
    with pytest.raises(InputError, match="16-d embeddings .* outputs 8-d") as err:
        check_gallery_model(tiny_gallery, narrower)
    assert "re-enrol" in str(err.value)


def test_bad_gallery_files(tmp_path):
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(b"PK\x03\x04 not a whole zip")
    with pytest.raises(InputError, match="cannot read gallery"):
        load_gallery(truncated)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(InputError, match="not an ftk gallery"):
        load_gallery(foreign)
    with pytest.raises(InputError, match="not found"):
        load_gallery(tmp_path / "none.npz")


# --- .tflite: the same code path ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_tflite(tiny_checkpoint_export, tmp_path_factory) -> Path:
    """This module's copy of the run's tiny float32 export (.tflite + manifest.json)."""
    from tests.conftest import copy_of

    return copy_of(tiny_checkpoint_export, tmp_path_factory, "tflite") / "model_float32.tflite"


def test_tflite_runs_the_same_path(tiny_tflite, tiny_embedder, tiny_gallery, face_folder, detector, tmp_path):
    tflite = load_embedder(tiny_tflite)
    assert tflite.name.startswith("tflite") and tflite.spec == tiny_embedder.spec
    paths = images_of(face_folder, "Colin_Powell")[:2] + images_of(face_folder, "Ariel_Sharon")[:2]
    on_tflite = compare_images(paths, tflite, threshold=0.9, detector=detector)
    on_torch = compare_images(paths, tiny_embedder, threshold=0.9, detector=detector)
    assert on_tflite.images == on_torch.images and on_tflite.model_sha256 != on_torch.model_sha256
    np.testing.assert_allclose(on_tflite.scores, on_torch.scores, atol=1e-4)

    probe = images_of(face_folder, "Ariel_Sharon")[-1]
    # The torch-enrolled gallery is another model's: refused, as the app should when its model file changes.
    with pytest.raises(InputError, match="another model"):
        match_probe(probe, tiny_gallery, tflite, 0.9, detector=detector)
    small = tmp_path / "small"
    for person in ("Ariel_Sharon", "Serena_Williams"):
        shutil.copytree(face_folder / person, small / person)
    gallery = enroll_gallery(small, tflite, detector, progress=False)
    result = match_probe(probe, gallery, tflite, 0.9, top_k=2, detector=detector)
    assert result.top[0].name == "Ariel_Sharon" and result.top[0].score == pytest.approx(1.0, abs=1e-5)


# --- the CLI ------------------------------------------------------------------------------------------------------
def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from toolkit.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_compare_and_match(tmp_path, tiny_checkpoint, face_folder, bad_images, capsys):
    a, b = images_of(face_folder, "Colin_Powell")[:2]
    c = images_of(face_folder, "Tony_Blair")[0]
    code, out, _ = run_cli(["compare", str(a), str(b), str(c), str(bad_images["grey"]), "--model",
                            str(tiny_checkpoint), "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["images"] == [str(a), str(b), str(c)]
    assert result["failures"] == [[str(bad_images["grey"]), "no face detected"]]
    assert result["threshold"] is None and len(result["pairs"]) == 3

    code, out, _ = run_cli(["compare", str(a), str(c), "--model", str(tiny_checkpoint), "--threshold", "0.2"], capsys)
    assert code == 0 and "threshold 0.2000 (given)" in out and ("same" in out or "different" in out)

    saved = tmp_path / "g.npz"
    args = ["match", str(a), "--gallery", str(face_folder), "--model", str(tiny_checkpoint), "--top-k", "2",
            "--threshold", "0.5", "--save-gallery", str(saved)]
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and saved.is_file()
    assert "accepted: Colin_Powell" in out and "time: embed" in out
    code, out, _ = run_cli(["match", str(c), "--gallery", str(saved), "--model", str(tiny_checkpoint), "--json"],
                           capsys)
    assert code == 0
    result = json.loads(out)
    assert result["accepted"] is None and len(result["top"]) == 5 and result["top"][0]["name"] == "Tony_Blair"

    code, _, err = run_cli(args, capsys)  # the .npz exists now
    assert code == 2 and "already exists" in err and "--overwrite" in err
    other = save_tiny_checkpoint(tmp_path / "other.pt", seed=3)
    code, _, err = run_cli(["match", str(c), "--gallery", str(saved), "--model", str(other)], capsys)
    assert code == 2 and err.count("\n") == 1 and "re-enrol" in err


# --- a model that discriminates -----------------------------------------------------------------------------------
def mobilefacenet_embedder(mobilefacenet_dir: Path):
    if importlib.util.find_spec("toolkit.models.mobilefacenet") is None:
        pytest.skip("toolkit/models/mobilefacenet.py (the MobileFaceNet backbone) is not in this checkout yet")
    from toolkit.embedders import EmbedderOptions

    return load_embedder(mobilefacenet_dir / "mobilefacenet.pt", EmbedderOptions(backbone="mobilefacenet"))


@pytest.mark.slow
@pytest.mark.shared
def test_mobilefacenet_same_person_scores_higher(mobilefacenet_dir, face_folder, detector, tmp_path):
    embedder = mobilefacenet_embedder(mobilefacenet_dir)
    assert embedder.spec.crop == "align"
    paths = sorted(face_folder.glob("*/*.jpg"))
    result = compare_images(paths, embedder, detector=detector)
    person = [Path(p).parent.name for p in result.images]
    matrix = np.array(result.scores)
    same, different = [], []
    for i, j in itertools.combinations(range(len(person)), 2):
        (same if person[i] == person[j] else different).append(matrix[i, j])
    same, different = np.array(same), np.array(different)
    assert len(same) >= 60 and len(different) >= 400
    # Every person's own pairs beat the pairs with other people on average, by a wide margin.
    assert same.mean() - different.mean() > 0.3, (same.mean(), different.mean())
    ordered = (same[:, None] > different[None, :]).mean()  # the ROC AUC of these pairs
    assert ordered > 0.95, ordered

    # 1:N as the app does it: enrol five photos per person, probe with the sixth.
    gallery_dir, probes = tmp_path / "gallery", []
    for folder in sorted(face_folder.iterdir()):
        images = sorted(folder.glob("*.jpg"))
        (gallery_dir / folder.name).mkdir(parents=True)
        for image in images[:-1]:
            shutil.copy(image, gallery_dir / folder.name)
        probes.append(images[-1])
    gallery = enroll_gallery(gallery_dir, embedder, detector, progress=False)
    hits = 0
    for probe in probes:
        result = match_probe(probe, gallery, embedder, threshold=None, top_k=3, detector=detector)
        hits += result.top[0].name == probe.parent.name
        assert probe.parent.name in [c.name for c in result.top]
    assert hits >= len(probes) - 1, hits


def test_help_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys\nfrom toolkit.cli import main\n"
            "for name in ('compare', 'match'):\n"
            "    try:\n        main([name, '--help'])\n    except SystemExit:\n        pass\n"
            "print([m for m in ('torch', 'numpy', 'litert_torch', 'ai_edge_litert', 'facenet_pytorch') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--save-gallery" in out and "--plot" in out
    assert out.strip().splitlines()[-1] == "[]"
