"""ftk evaluate end to end on real LFW images (real MTCNN), a tiny checkpoint and its real .tflite export."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from toolkit.errors import InputError, OutputExistsError
from toolkit.evaluate import evaluate_model_file
from toolkit.reports import find_eval_report, threshold_at_far

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def pairs_setup(face_folder, tmp_path_factory):
    """LFW-layout folder (6 people x 6 images + a face-less 'Nobody') and a 36-pair dev-style pairs file."""
    root = tmp_path_factory.mktemp("eval")
    data = root / "images"
    shutil.copytree(face_folder, data)
    people = sorted(p.name for p in data.iterdir() if p.is_dir())
    (data / "Nobody").mkdir()
    smooth = np.linspace(0, 255, 250 * 250 * 3).reshape(250, 250, 3).astype(np.uint8)
    Image.fromarray(smooth).save(data / "Nobody" / "Nobody_0001.jpg")
    same = [f"{p}\t{a}\t{a + 1}" for p in people for a in (1, 3, 5)]
    diff = [f"{p}\t{k}\t{q}\t{k}" for p, q in zip(people, people[1:] + people[:1]) for k in (1, 2)]
    diff += [f"Nobody\t1\t{p}\t6" for p in people]
    pairs = root / "pairs_small.txt"
    pairs.write_text(f"{len(same)}\n" + "\n".join(same + diff) + "\n")
    return {"root": root, "data": data, "pairs": pairs, "people": people}


@pytest.fixture(scope="module")
def evaluated(pairs_setup, tiny_checkpoint):
    """The tiny checkpoint (in models/) evaluated from the folder work/, without --out."""
    model = pairs_setup["root"] / "models" / "tiny.pt"
    model.parent.mkdir()
    shutil.copyfile(tiny_checkpoint, model)
    (pairs_setup["root"] / "work").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pairs_setup["root"] / "work")
        result = evaluate_model_file(model, pairs=pairs_setup["pairs"], data=pairs_setup["data"], progress=False)
    return model, result


def test_checkpoint_report_where_deploy_looks(evaluated, pairs_setup, monkeypatch):
    model, result = evaluated
    v = result.verification
    # In the current folder, not in the model's: the user did not point --out there.
    assert result.report_path == pairs_setup["root"] / "work" / "tiny.eval" / "report.json"
    assert sorted(p.name for p in model.parent.iterdir()) == ["tiny.pt"]
    monkeypatch.chdir(pairs_setup["root"] / "work")
    assert result.roc_path.stat().st_size > 1000 and result.histogram_path.stat().st_size > 1000
    assert v.n_pairs == 36 and v.n_same == 18 and v.n_images == 37 and v.n_folds == 10 and not v.folds_from_file
    # The face-less picture falls back to a centre crop, counted and named; every LFW face is found.
    assert v.n_center_crop_fallbacks == 1 and v.center_crop_fallbacks == ["Nobody/Nobody_0001.jpg"]
    # 36 pairs in 10 folds of 3 or 4: each fold's accuracy is a count over its pairs, the mean is over folds.
    assert len(v.fold_accuracies) == 10
    assert all(min(abs(a * n - round(a * n)) for n in (3, 4)) < 1e-9 for a in v.fold_accuracies), v.fold_accuracies
    assert v.accuracy_mean == pytest.approx(np.mean(v.fold_accuracies))
    assert v.accuracy_std == pytest.approx(np.std(v.fold_accuracies))
    report = find_eval_report(model)
    assert report is not None and report["model_sha256"] == result.model_sha256
    assert set(report["verification"]["thresholds_at_far"]) == {"0.01", "0.001"}
    assert threshold_at_far(report, 1e-3) == pytest.approx(v.threshold)
    assert report["spec"]["backbone"] == "tiny"
    # 18 impostor pairs cannot resolve FAR 1e-2: the threshold is above every impostor, and the report says so.
    assert report["verification"]["far_resolvable"]["0.01"] is False
    assert report["verification"]["far_measured"]["0.001"] == 0.0


def test_scores_match_an_independent_computation(evaluated, pairs_setup):
    """Recompute the pair scores without ftk's faces path: facenet-pytorch's MTCNN called directly, the face nearest
    the centre picked here, the spec's crop, the torch module, numpy cosine. The AUC must agree."""
    import torch
    from facenet_pytorch import MTCNN
    from PIL import Image

    from toolkit.checkpoint import load_checkpoint
    from toolkit.data.crop import crop_face
    from toolkit.data.pairs import read_pairs
    from toolkit.metrics import auc, roc_curve
    from toolkit.models.face_model import embedding_model_from

    model, result = evaluated
    loaded = load_checkpoint(model)
    spec = loaded.model.spec
    module = embedding_model_from(loaded.model).eval()
    mtcnn = MTCNN(keep_all=True)
    pairs = read_pairs(pairs_setup["pairs"])
    faces, missing = {}, []
    for rel in pairs.image_paths():
        image = Image.open(pairs_setup["data"] / rel).convert("RGB")
        boxes, _, points = mtcnn.detect(image, landmarks=True)
        if boxes is None:
            missing.append(rel)
            continue
        size = np.array(image.size, float)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2 - size / 2
        k = int(np.argmin((centres ** 2).sum(axis=1)))
        faces[rel] = (boxes[k] / np.tile(size, 2), points[k] / size)  # relative to the image
    # No face: the median face position of the others (the documented fallback policy).
    median = (np.median([b for b, _ in faces.values()], axis=0), np.median([m for _, m in faces.values()], axis=0))
    emb = {}
    for rel in pairs.image_paths():
        image = Image.open(pairs_setup["data"] / rel).convert("RGB")
        box, marks = faces.get(rel, median)
        size = np.array(image.size, float)
        crop = crop_face(image, spec, tuple(box * np.tile(size, 2)), [tuple(p) for p in marks * size])
        with torch.no_grad():
            e = module(torch.from_numpy(crop[None].astype(np.float32))).numpy()[0]
        emb[rel] = e / np.linalg.norm(e)
    scores = [float(emb[p.left] @ emb[p.right]) for p in pairs.pairs]
    assert missing and result.verification.n_center_crop_fallbacks == len(missing)
    assert auc(roc_curve(scores, pairs.same)) == pytest.approx(result.verification.auc, abs=1e-4)


def test_overwrite_and_embedding_cache(evaluated, pairs_setup, monkeypatch):
    import os

    model, _ = evaluated
    monkeypatch.chdir(pairs_setup["root"] / "work")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        evaluate_model_file(model, pairs=pairs_setup["pairs"], data=pairs_setup["data"], progress=False)
    again = evaluate_model_file(model, pairs=pairs_setup["pairs"], data=pairs_setup["data"], progress=False,
                                overwrite=True)
    assert again.verification.auc == evaluated[1].verification.auc
    cache = os.environ["FTK_CACHE_DIR"]
    assert list((__import__("pathlib").Path(cache) / "embeddings").glob("*.npz"))


def test_classification_top1_uses_class_names(pairs_setup, tmp_path):
    """A head that always answers one person: top-1 accuracy is that person's share of the test faces."""
    import torch

    from toolkit.checkpoint import CheckpointMeta, save_checkpoint
    from toolkit.data.dataset import read_faces_csv
    from toolkit.models.face_model import FaceModel
    from toolkit.models.registry import default_spec
    from toolkit.prepare import prepare

    csv_path = tmp_path / "faces.csv"
    prepare(pairs_setup["data"], csv_path, split="0.5,0.25,0.25", contact_sheet=0, progress=False)
    names = list(reversed(pairs_setup["people"]))  # a different order than the CSV's labels
    spec = default_spec("tiny")
    model = FaceModel(spec, len(names))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[names.index(pairs_setup["people"][0])] = 1.0
    ckpt = tmp_path / "always.pt"
    save_checkpoint(ckpt, model, CheckpointMeta(spec=spec, num_classes=len(names), class_names=names))
    result = evaluate_model_file(ckpt, csv=csv_path, out_dir=tmp_path / "ev", progress=False)
    test = [r for r in read_faces_csv(csv_path) if r.split_type == "test"]
    expected = sum(r.person_name == pairs_setup["people"][0] for r in test) / len(test)
    assert result.classification.n_faces == len(test)
    assert result.classification.accuracy == pytest.approx(expected) and 0 < expected < 1
    assert result.verification is None


def test_tflite_export_reuses_crops_and_agrees(evaluated, pairs_setup, tiny_checkpoint_export, tmp_path, caplog,
                                               monkeypatch):
    import logging
    from pathlib import Path

    from toolkit.embedders import EmbedderOptions

    tflite = Path(shutil.copytree(tiny_checkpoint_export, tmp_path / "export")) / "model_float32.tflite"
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    with caplog.at_level(logging.INFO, logger="toolkit.data.faces"):
        result = evaluate_model_file(tflite, pairs=pairs_setup["pairs"], data=pairs_setup["data"], progress=False)
    # Same spec -> the torch evaluation's crops, no new detection or cropping.
    reused = [r.getMessage() for r in caplog.records if "reusing" in r.getMessage() and "face crops" in r.getMessage()]
    assert reused and f"reusing {evaluated[1].verification.n_images} cached face crops" in reused[0], caplog.text
    assert result.report_path == tmp_path / "work" / "model_float32.eval" / "report.json"
    torch_v, tfl_v = evaluated[1].verification, result.verification
    assert result.model_sha256 != evaluated[1].model_sha256
    assert tfl_v.auc == pytest.approx(torch_v.auc, abs=2e-3)
    assert tfl_v.best_threshold == pytest.approx(torch_v.best_threshold, abs=2e-3)
    assert tfl_v.threshold == pytest.approx(torch_v.threshold, abs=2e-3)
    # A lone copy still carries its contract inside the file: evaluated as ftk's own, same embeddings.
    lone = tmp_path / "lone" / "model.tflite"
    lone.parent.mkdir()
    shutil.copyfile(tflite, lone)
    alone = evaluate_model_file(lone, pairs=pairs_setup["pairs"], data=pairs_setup["data"], progress=False,
                                out_dir=tmp_path / "lone.eval")
    assert alone.verification.auc == tfl_v.auc and alone.spec == result.spec
    # Without that contract the file is "foreign": it needs the input contract on the command line.
    from toolkit.tflite.metadata import remove_contract

    foreign = tmp_path / "foreign" / "model.tflite"
    foreign.parent.mkdir()
    shutil.copyfile(tflite, foreign)
    assert remove_contract(foreign)
    with pytest.raises(InputError, match="--input-size"):
        evaluate_model_file(foreign, pairs=pairs_setup["pairs"], data=pairs_setup["data"], progress=False)
    options = EmbedderOptions(backbone="tiny", input_size=32, normalization="0,1")  # our graph normalises itself
    alien = evaluate_model_file(foreign, options, pairs=pairs_setup["pairs"], data=pairs_setup["data"],
                                progress=False, out_dir=tmp_path / "foreign.eval")
    assert alien.verification.auc == pytest.approx(tfl_v.auc, abs=1e-6)


def test_bad_inputs(pairs_setup, tiny_checkpoint, tmp_path):
    with pytest.raises(InputError, match="nothing to evaluate"):
        evaluate_model_file(tiny_checkpoint, out_dir=tmp_path / "a", progress=False)
    broken = tmp_path / "broken.txt"
    broken.write_text("1\nAl\t1\t2\t3\t4\t5\n")
    with pytest.raises(InputError, match="broken.txt:2: expected 3 fields"):
        evaluate_model_file(tiny_checkpoint, pairs=broken, data=pairs_setup["data"], out_dir=tmp_path / "b",
                            progress=False)
    with pytest.raises(InputError, match="missing under"):
        evaluate_model_file(tiny_checkpoint, pairs=pairs_setup["pairs"], data=tmp_path, out_dir=tmp_path / "c",
                            progress=False)
    assert not (tmp_path / "b" / "report.json").exists()


def test_cli_json_and_help(evaluated, pairs_setup, tmp_path):
    model, result = evaluated
    cmd = [sys.executable, "-m", "toolkit.cli", "evaluate", str(model), "--pairs", str(pairs_setup["pairs"]),
           "--data", str(pairs_setup["data"]), "--out", str(tmp_path / "cli"), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verification"]["auc"] == pytest.approx(result.verification.auc)
    assert (tmp_path / "cli" / "report.json").is_file()
    bad = subprocess.run(cmd[:5] + ["--pairs", str(tmp_path / "none.txt")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: pairs file not found")
    helptext = subprocess.run([sys.executable, "-m", "toolkit.cli", "evaluate", "--help"], capture_output=True,
                              text=True).stdout
    assert "NHWC" in helptext and "--normalization" in helptext and "--far" in helptext


def test_collapsed_embeddings_are_flagged(pairs_setup, tiny_checkpoint, tmp_path, caplog):
    """Every pair cosine ~0.99999: the console and the report say the embeddings collapsed, and the thresholds are
    printed with the digits that show it instead of 1.0000."""
    from tests.unit.test_parity import collapsed_checkpoint
    from toolkit.commands.evaluate import format_result

    model = collapsed_checkpoint(tiny_checkpoint, tmp_path / "collapsed.pt")
    result = evaluate_model_file(model, pairs=pairs_setup["pairs"], data=pairs_setup["data"],
                                 out_dir=tmp_path / "eval", progress=False)
    assert result.warnings and result.warnings[0].startswith("the embeddings have collapsed: 90 % of pair cosines")
    assert any("calibrated thresholds of 0.9999 or more" in w for w in result.warnings)
    assert any(r.levelname == "WARNING" and "collapsed" in r.getMessage() for r in caplog.records)
    assert json.loads(result.report_path.read_text())["warnings"] == result.warnings
    assert "(threshold 1.0000)" not in format_result(result) and "(threshold 0.99" in format_result(result)
    # The working tiny model is not flagged.
    healthy = evaluate_model_file(tiny_checkpoint, pairs=pairs_setup["pairs"], data=pairs_setup["data"],
                                  out_dir=tmp_path / "healthy", progress=False)
    assert healthy.warnings == []


def test_another_file_of_the_same_name_does_not_replace_its_report(pairs_setup, tiny_checkpoint, tmp_path,
                                                                   monkeypatch):
    """runs/a/best.pt then runs/b/best.pt from one folder: both default to ./best.eval/; the second is refused with
    a reason and a way out, not silently mixed up with the first."""
    from tests.unit.test_parity import collapsed_checkpoint

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copyfile(tiny_checkpoint, tmp_path / "a" / "best.pt")
    other = collapsed_checkpoint(tiny_checkpoint, tmp_path / "b" / "best.pt")
    monkeypatch.chdir(tmp_path)
    kwargs = dict(pairs=pairs_setup["pairs"], data=pairs_setup["data"], progress=False)
    evaluate_model_file(tmp_path / "a" / "best.pt", **kwargs)
    with pytest.raises(OutputExistsError, match="holds the report of another model file .* --out DIR"):
        evaluate_model_file(other, **kwargs)
    assert evaluate_model_file(other, out_dir=tmp_path / "b.eval", **kwargs).report_path.is_file()
