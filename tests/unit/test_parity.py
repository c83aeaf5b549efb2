"""parity-check: the metrics themselves, the real tiny export against its checkpoint (pass), a checkpoint whose
weights changed after export (fail, exit 1), and bad inputs (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.unit.export_helpers import error_lines, run_cli
from toolkit.errors import InputError
from toolkit.parity import DEFAULT_TOLERANCES, compare_embeddings, evaluate_tolerances, parse_tolerances




# --- the metrics on plain arrays -------------------------------------------------------------------------------------
def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_identical_embeddings_are_perfect():
    e = _unit(np.random.default_rng(0).normal(size=(10, 8)))
    m = compare_embeddings(e, e.copy())
    assert m.min_cosine == pytest.approx(1.0) and m.max_abs_diff == 0 and m.max_similarity_deviation == 0
    assert m.nn_agreement == 1.0 and m.decision_agreement == 1.0 and m.pairs == 45
    assert m.threshold_source.startswith("median")
    assert evaluate_tolerances(m, DEFAULT_TOLERANCES["float32"]) == []


def test_noise_moves_every_metric_and_fails_float32_tolerances():
    rng = np.random.default_rng(1)
    e = _unit(rng.normal(size=(40, 16)))
    noisy = _unit(e + rng.normal(scale=0.3, size=e.shape))
    m = compare_embeddings(e, noisy, labels=[f"img{i}" for i in range(40)], threshold=0.2)
    assert 0.5 < m.mean_cosine < 0.99 and m.min_cosine < m.mean_cosine
    assert m.max_similarity_deviation > 0.1 and m.nn_agreement < 1.0 and m.decision_agreement < 1.0
    assert m.threshold == 0.2 and m.worst[0][1] == pytest.approx(m.min_cosine)
    failures = evaluate_tolerances(m, DEFAULT_TOLERANCES["float32"])
    assert any(f.startswith("min_cosine") for f in failures)
    # A NaN never passes a tolerance.
    nan = compare_embeddings(e, np.full_like(e, np.nan))
    assert evaluate_tolerances(nan, {"min_cosine": 0.0})


def test_compare_rejects_mismatched_or_tiny_sets():
    e = _unit(np.random.default_rng(0).normal(size=(5, 4)))
    with pytest.raises(InputError, match="shape"):
        compare_embeddings(e, e[:4])
    with pytest.raises(InputError, match="at least 3"):
        compare_embeddings(e[:2], e[:2])


def test_parse_tolerances():
    assert parse_tolerances(["min_cosine=0.999", "nn_agreement=1,mean_cosine=0.5"]) == {
        "min_cosine": 0.999, "nn_agreement": 1.0, "mean_cosine": 0.5}
    with pytest.raises(InputError, match="did you mean 'min_cosine'"):
        parse_tolerances(["min_cosin=0.9"])
    with pytest.raises(InputError, match="NAME=VALUE"):
        parse_tolerances(["0.9"])
    with pytest.raises(InputError, match="needs a number"):
        parse_tolerances(["min_cosine=high"])


# --- the real export ---------------------------------------------------------------------------------------------------
def test_float32_and_int8_pass_on_real_face_crops(export_dir, ref_ckpt, faces_csv, tmp_path, capsys):
    out = tmp_path / "parity.json"
    code, stdout, err = run_cli(["parity-check", export_dir / "model_float32.tflite", "--checkpoint", ref_ckpt,
                                 "--images", faces_csv, "--limit", 40, "--out", out], capsys)
    assert code == 0, stdout + err
    assert "PASS" in stdout and "min_cosine" in stdout
    report = json.loads(out.read_text())
    assert report["passed"] and report["precision"] == "float32" and report["metrics"]["faces"] == 40
    assert report["metrics"]["min_cosine"] >= 0.9999
    assert report["tolerances"]["min_cosine"] == DEFAULT_TOLERANCES["float32"]["min_cosine"]
    # Refuses to overwrite the report without --overwrite.
    code, _, err = run_cli(["parity-check", export_dir / "model_float32.tflite", "--checkpoint", ref_ckpt,
                            "--images", faces_csv, "--out", out], capsys)
    assert code == 2 and "--overwrite" in err

    code, stdout, err = run_cli(["parity-check", export_dir / "model_int8.tflite", "--checkpoint", ref_ckpt,
                                 "--images", faces_csv, "--json"], capsys)
    assert code == 0, stdout + err
    report = json.loads(stdout)
    m = report["metrics"]
    assert report["precision"] == "int8" and report["passed"]
    assert m["mean_cosine"] >= 0.98 and m["min_cosine"] >= 0.95
    assert m["min_cosine"] < 0.99999  # quantisation really changed the numbers


def _without_parity_sample(export_dir: Path, dest: Path) -> Path:
    """A copy of the export whose manifest records no held-out faces (as an export from before they existed)."""
    shutil.copytree(export_dir, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    del manifest["parity_sample"]
    (dest / "manifest.json").write_text(json.dumps(manifest))
    (dest / "parity_faces.npz").unlink()
    return dest


def test_reference_inputs_are_used_without_images_or_a_recorded_sample(export_dir, ref_ckpt, tmp_path):
    from toolkit.parity import parity_check

    old = _without_parity_sample(export_dir, tmp_path / "old")
    report = parity_check(old / "model_float32.tflite", ref_ckpt, progress=False)
    assert report.passed and report.faces_source == "reference set tiny-synthetic"
    assert report.metrics.faces == 16 and not report.warnings


# --- the held-out sample an int8 export records ------------------------------------------------------------------------
def test_export_records_a_held_out_sample_disjoint_from_calibration(export_dir, faces_csv):
    """50 CSV faces, --calibration-limit 40: the 10 beyond it held out by image content, 40 calibrated on; the
    manifest's hashes are the files'."""
    from toolkit.io import sha256_file

    manifest = json.loads((export_dir / "manifest.json").read_text())
    sample = manifest["parity_sample"]
    calibration = manifest["artifacts"]["model_int8.tflite"]["quantization"]["calibration"]
    assert sample["faces"] == 10 and calibration["faces"] == 40 and calibration["held_out_for_parity"] == 10
    assert sha256_file(export_dir / "parity_faces.npz") == sample["sha256"]
    held = {img["sha256"] for img in sample["images"]}
    for img in sample["images"]:
        assert sha256_file(Path(img["path"])) == img["sha256"]
    assert len(sample["calibration_images_sha256"]) == 40 and not held & set(sample["calibration_images_sha256"])
    with np.load(export_dir / "parity_faces.npz", allow_pickle=False) as data:
        assert data["images"].shape == (10, 32, 32, 3) and data["images"].dtype == np.uint8
        assert [str(p) for p in data["paths"]] == [img["path"] for img in sample["images"]]


def test_parity_check_runs_out_of_the_box_on_the_held_out_faces(export_dir, ref_ckpt, capsys):
    code, out, err = run_cli(["parity-check", export_dir / "model_int8.tflite", "--checkpoint", ref_ckpt, "--json"],
                             capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["faces_source"].startswith("10 held-out faces from ") and "not among its 40" in report["faces_source"]
    assert report["metrics"]["faces"] == 10 and report["passed"]


def test_a_tampered_or_overlapping_sample_is_refused(export_dir, ref_ckpt, tmp_path, capsys):
    from toolkit.io import sha256_file

    tampered = shutil.copytree(export_dir, tmp_path / "tampered")
    with np.load(tampered / "parity_faces.npz", allow_pickle=False) as data:
        images, paths = data["images"].copy(), data["paths"]
    images[0, 0, 0, 0] ^= 1
    np.savez(tampered / "parity_faces.npz", images=images, paths=paths)
    overlapping = shutil.copytree(export_dir, tmp_path / "overlap")
    manifest = json.loads((overlapping / "manifest.json").read_text())
    manifest["parity_sample"]["calibration_images_sha256"].append(manifest["parity_sample"]["images"][0]["sha256"])
    (overlapping / "manifest.json").write_text(json.dumps(manifest))
    cases = [(tampered, "does not match the sha256"), (overlapping, "also calibration faces")]
    # Malformed entries and files whose sha256 the manifest was edited to match: refused, never a crash.
    for name, edit, needle in [
        ("as-string", lambda m, d: m.__setitem__("parity_sample", "parity_faces.npz"), "expected an object"),
        ("bad-images", lambda m, d: m["parity_sample"].__setitem__("images", ["abc"]), "images must be a list"),
        ("bad-calib", lambda m, d: m["parity_sample"].__setitem__("calibration_images_sha256", 5), "list of hashes"),
        ("not-zip", lambda m, d: (d / "parity_faces.npz").write_bytes(b"\x80\x04junk"), "not a parity sample"),
        ("float-images", lambda m, d: np.savez(d / "parity_faces.npz", images=np.zeros((2, 32, 32, 3), np.float32),
                                                 paths=np.array(["a", "b"])), "not uint8 [N, S, S, 3]"),
        ("short-paths", lambda m, d: np.savez(d / "parity_faces.npz", images=np.zeros((2, 32, 32, 3), np.uint8),
                                                paths=np.array(["a"])), "not uint8 [N, S, S, 3]"),
    ]:
        folder = shutil.copytree(export_dir, tmp_path / name)
        manifest = json.loads((folder / "manifest.json").read_text())
        edit(manifest, folder)
        if isinstance(manifest["parity_sample"], dict):
            manifest["parity_sample"]["sha256"] = sha256_file(folder / "parity_faces.npz")
        (folder / "manifest.json").write_text(json.dumps(manifest))
        cases.append((folder, needle))
    for folder, needle in cases:
        code, _, err = run_cli(["parity-check", folder / "model_int8.tflite", "--checkpoint", ref_ckpt], capsys)
        lines = error_lines(err)
        assert code == 2 and len(lines) == 1 and needle in lines[0], (folder.name, err)


def test_weights_changed_after_export_fail(export_dir, ref_ckpt, faces_csv, tmp_path, capsys):
    """Perturb one conv of the checkpoint after export: parity must catch it (exit 1).

    float32 catches a 5% perturbation of one layer; int8's tolerances are looser than that (its own quantisation
    noise is of that order), so int8 is checked with a clearly broken layer (50%)."""
    import torch

    from toolkit.checkpoint import load_checkpoint, save_checkpoint

    def perturbed(scale: float) -> Path:
        loaded = load_checkpoint(ref_ckpt)
        torch.manual_seed(0)
        with torch.no_grad():
            conv = loaded.model.backbone.features[3]
            conv.weight.add_(scale * conv.weight.abs().mean() * torch.randn_like(conv.weight))
        path = tmp_path / f"perturbed_{scale}.pt"
        save_checkpoint(path, loaded.model, loaded.meta)
        return path

    for name, scale in (("model_float32.tflite", 0.05), ("model_int8.tflite", 0.5)):
        out = tmp_path / f"{name}.json"
        code, stdout, err = run_cli(["parity-check", export_dir / name, "--checkpoint", perturbed(scale),
                                     "--images", faces_csv, "--out", out], capsys)
        assert code == 1, stdout + err
        lines = error_lines(err)
        assert len(lines) == 1 and "parity failed" in lines[0]
        report = json.loads(out.read_text())
        assert not report["passed"] and report["failures"]
        assert any("different checkpoint" in w for w in report["warnings"])
    assert "min_cosine" in json.loads((tmp_path / "model_float32.tflite.json").read_text())["failures"][0]


def collapsed_checkpoint(source: Path, dest: Path) -> Path:
    """``source`` with its last BatchNorm's scale near 0 and bias 1: every face maps to nearly (1, 1, ..., 1), the
    way a 1-epoch InceptionResnetV1 gives cosines of ~0.99999 for every pair."""
    import torch

    from toolkit.checkpoint import load_checkpoint, save_checkpoint

    loaded = load_checkpoint(source)
    with torch.no_grad():
        loaded.model.backbone.last_bn.weight.mul_(1e-3)
        loaded.model.backbone.last_bn.bias.fill_(1.0)
    save_checkpoint(dest, loaded.model, loaded.meta)
    return dest


def test_a_collapsed_reference_is_blamed_not_the_export():
    """Nearly equal embeddings: int8-sized noise reorders neighbours; the report leads with the float model."""
    from toolkit.parity import blame_collapsed_reference

    rng = np.random.default_rng(0)
    collapsed = rng.normal(size=16) + 1e-3 * rng.normal(size=(20, 16))
    m = compare_embeddings(collapsed, collapsed + 1e-3 * rng.normal(size=collapsed.shape))  # int8-sized noise
    failures = evaluate_tolerances(m, DEFAULT_TOLERANCES["int8"])
    assert m.min_cosine > 0.9999 and any(f.startswith("nn_agreement") for f in failures)
    warnings: list[str] = []
    blamed = blame_collapsed_reference(collapsed, failures, warnings)
    assert blamed[0].startswith("the float (PyTorch) model is degenerate, not the export: the embeddings have "
                                "collapsed") and blamed[1:] == failures and warnings == []
    # Nothing failed: still said, as a warning. Healthy embeddings: nothing added.
    assert blame_collapsed_reference(collapsed, [], warnings) == [] and "degenerate" in warnings[0]
    healthy = _unit(rng.normal(size=(20, 16)))
    assert blame_collapsed_reference(healthy, failures, []) == failures


def test_parity_check_names_a_collapsed_checkpoint(export_dir, ref_ckpt, faces_csv, tmp_path, capsys):
    collapsed = collapsed_checkpoint(ref_ckpt, tmp_path / "collapsed.pt")
    out = tmp_path / "parity.json"
    code, stdout, err = run_cli(["parity-check", export_dir / "model_int8.tflite", "--checkpoint", collapsed,
                                 "--images", faces_csv, "--out", out], capsys)
    assert code == 1, stdout + err
    assert "degenerate, not the export" in error_lines(err)[0]
    assert json.loads(out.read_text())["failures"][0].startswith("the float (PyTorch) model is degenerate")


def test_without_manifest_precision_comes_from_the_weights(export_dir, ref_ckpt, faces_csv, tmp_path):
    from toolkit.parity import guess_precision, parity_check

    lone = tmp_path / "lone_int8.tflite"
    shutil.copyfile(export_dir / "model_int8.tflite", lone)
    assert guess_precision(lone) == "int8"
    report = parity_check(lone, ref_ckpt, images=faces_csv, progress=False)
    print(report.table())
    assert report.precision == "int8" and report.passed
    assert any("no export manifest" in w for w in report.warnings)


def test_bad_inputs_exit_2_with_one_line(export_dir, ref_ckpt, tmp_path, capsys):
    truncated = tmp_path / "exp" / "model_float32.tflite"
    truncated.parent.mkdir()
    data = (export_dir / "model_float32.tflite").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    cases = [
        (["parity-check", tmp_path / "missing.tflite", "--checkpoint", ref_ckpt], "not found"),
        (["parity-check", truncated, "--checkpoint", ref_ckpt], "truncated"),
        (["parity-check", export_dir / "model_float32.tflite", "--checkpoint", tmp_path / "none.pt"],
         "checkpoint not found"),
        (["parity-check", export_dir / "model_float32.tflite", "--checkpoint", ref_ckpt, "--tolerance",
          "min_cos=1"], "did you mean"),
        (["parity-check", export_dir / "model_float32.tflite", "--checkpoint", ref_ckpt, "--images",
          tmp_path / "nowhere"], "face source not found"),
        (["info", truncated], "truncated"),
    ]
    for args, needle in cases:
        code, _, err = run_cli(args, capsys)
        lines = error_lines(err)
        assert code == 2, (args, err)
        assert len(lines) == 1 and needle in lines[0], (args, err)


def test_layers_reports_per_layer_sqnr_and_finds_a_broken_layer(export_dir, ref_ckpt, faces_csv, tmp_path, capsys):
    """--layers: every quantised conv of the tiny int8 export gets an SQNR against the float graph; a checkpoint
    with one layer scaled after export shows that layer (and what follows) as the worst."""
    import torch

    from toolkit.checkpoint import load_checkpoint, save_checkpoint
    from toolkit.parity import layer_errors

    model = export_dir / "model_int8.tflite"
    code, out, err = run_cli(["parity-check", model, "--checkpoint", ref_ckpt, "--images", faces_csv, "--limit", 12,
                              "--layers", "--json"], capsys)
    assert code == 0, err
    layers = json.loads(out[out.index("{"):])["layers"]
    names = [e["layer"] for e in layers]
    assert {"features.0", "features.3", "features.6", "last_linear"} <= set(names), names
    assert all(np.isfinite(e["sqnr_db"]) and e["sqnr_db"] > 10 for e in layers)
    assert [e["sqnr_db"] for e in layers] == sorted(e["sqnr_db"] for e in layers)

    loaded = load_checkpoint(ref_ckpt)
    with torch.no_grad():
        loaded.model.backbone.features[6].weight.mul_(1.5)
    changed = tmp_path / "changed.pt"
    save_checkpoint(changed, loaded.model, loaded.meta)
    errors = layer_errors(model, changed, faces_csv, limit=12)
    by_name = {e.layer: e.sqnr_db for e in errors}
    assert by_name["features.6"] < 10 and by_name["features.0"] > 15
    assert errors[0].layer in ("features.6", "last_linear")

    # Without --faces: the faces the export held out (10), as for parity itself.
    code, out, err = run_cli(["parity-check", model, "--checkpoint", ref_ckpt, "--layers", "--json"], capsys)
    assert code == 0, err
    assert {e["layer"] for e in json.loads(out[out.index("{"):])["layers"]} == set(names)


def test_calibration_limit_is_honoured_and_parity_faces_0_records_no_sample(ref_ckpt, faces_csv, tmp_path, capsys):
    """--calibration-limit 20 --parity-faces 0 on 50 faces: exactly 20 calibrated on, nothing held out (the
    export_dir fixture covers a held-out sample: limit 40, the 10 beyond it)."""
    code, out, err = run_cli(["export", ref_ckpt, "--out", tmp_path / "exp", "--quantize", "int8", "--faces",
                              faces_csv, "--calibration-limit", "20", "--parity-faces", "0", "--quiet"], capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    calibration = manifest["artifacts"]["model_int8.tflite"]["quantization"]["calibration"]
    assert calibration["faces"] == 20 and calibration["limit"] == 20 and calibration["held_out_for_parity"] == 0
    assert "parity_sample" not in manifest and not (tmp_path / "exp" / "parity_faces.npz").exists()
    assert "int8 calibrated on 20 faces\n" in out and "model_int8.tflite --checkpoint" in out
    assert out.rstrip().endswith("--faces DIR_OR_CSV")


def test_split_held_out_takes_only_what_is_beyond_the_limit_and_never_splits_a_duplicate(tmp_path):
    from toolkit.data.faces import FaceCrops
    from toolkit.held_out import split_held_out

    paths = []
    for i in range(50):  # 50 photos, of which 5 pairs are byte-identical copies
        path = tmp_path / f"{i:02d}.jpg"
        path.write_bytes(f"photo {i if i < 40 else i - 10}".encode())
        paths.append(str(path))
    crops = FaceCrops(np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1).repeat(3, axis=3), paths)
    calib, held, digests = split_held_out(crops, calibration_limit=20, wanted=12, seed=0)
    assert len(calib) == 20 and 12 <= len(held) <= 13  # a duplicate joins its twin
    by_path = dict(zip(paths, digests))
    assert not {by_path[p] for p in held.paths} & {by_path[p] for p in calib.paths}
    assert [int(v) for v in calib.images[:, 0, 0, 0]] == [paths.index(p) for p in calib.paths]
    again = split_held_out(crops, calibration_limit=20, wanted=12, seed=0)[1]
    assert again.paths == held.paths  # seeded: the same faces every time
    assert len(split_held_out(crops, calibration_limit=45, wanted=12)[1]) == 0  # 5 to spare: under 8, no sample
    assert len(split_held_out(crops, calibration_limit=60, wanted=12)[0]) == 50
