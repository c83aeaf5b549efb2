"""Export on the tiny model: real litert-torch conversion (float32 and PT2E int8), the real LiteRT interpreter,
the manifest, and the refusals (bad inputs leave nothing behind)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.unit.export_helpers import copy_export, error_lines, run_cli
from toolkit.errors import InputError, NoFacesError, OutputExistsError




def _ops(entry: dict) -> dict[str, int]:
    return {op["name"]: op["count"] for op in entry["ops"]}


def test_export_writes_both_artifacts_and_manifest(export_dir, ref_ckpt):
    from toolkit.checkpoint import read_checkpoint_meta
    from toolkit.io import sha256_file

    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert sorted(p.name for p in export_dir.iterdir()) == ["manifest.json", "model_float32.tflite",
                                                            "model_int8.tflite"]
    assert manifest["spec"] == read_checkpoint_meta(ref_ckpt).spec.to_dict()
    assert manifest["embedding_dim"] == 16
    assert manifest["source_checkpoint"]["sha256"] == sha256_file(ref_ckpt)
    for tool in ("ftk", "torch", "litert-torch", "ai-edge-litert"):
        assert manifest["tools"][tool]
    for name, precision in (("model_float32.tflite", "float32"), ("model_int8.tflite", "int8")):
        entry = manifest["artifacts"][name]
        path = export_dir / name
        assert entry["precision"] == precision
        assert entry["sha256"] == sha256_file(path) and entry["size_bytes"] == path.stat().st_size
        assert entry["input_shape"] == [1, 32, 32, 3] and entry["input_dtype"] == "float32"
        assert entry["output_shape"] == [1, 16] and entry["output_dtype"] == "float32"
        assert entry["min_runtime"] and entry["external_buffers"] is False and entry["hybrid_int8"] is False
        assert all(op["version"] >= 1 and op["count"] >= 1 for op in entry["ops"])
        assert "CONV_2D" in _ops(entry)
    f32, i8 = manifest["artifacts"]["model_float32.tflite"], manifest["artifacts"]["model_int8.tflite"]
    # Full-integer: float I/O converted at the edges, integer conv weights, no float conv weights left.
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(_ops(i8)) and "int8" in i8["weight_types"]
    assert "QUANTIZE" not in _ops(f32) and f32["weight_types"] == ["float32"]
    quant = i8["quantization"]
    assert quant["method"] == "pt2e-static" and quant["calibration"]["faces"] == 50
    # The tiny backbone has no residual blocks to fold.
    assert quant["folded_residual_scales"] == 0
    assert i8["size_bytes"] < f32["size_bytes"]


def test_exported_models_match_pytorch(export_dir, ref_ckpt, faces_csv):
    """Both files run in the real LiteRT interpreter through the manifest-driven embedder and track PyTorch on
    real face crops (int8 was calibrated on faces; synthetic inputs would be out of its calibrated range)."""
    from toolkit.data.faces import load_face_crops
    from toolkit.embedders import load_embedder

    torch_embedder = load_embedder(ref_ckpt)
    faces = load_face_crops(faces_csv, torch_embedder.spec, limit=20, progress=False).images
    torch_emb = torch_embedder.embed(faces)
    f32 = load_embedder(export_dir / "model_float32.tflite").embed(faces)
    i8 = load_embedder(export_dir / "model_int8.tflite").embed(faces)
    cos32 = np.sum(torch_emb * f32, axis=1)
    cos8 = np.sum(torch_emb * i8, axis=1)
    assert cos32.min() > 0.9999
    assert cos8.mean() > 0.99
    # int8 is close but not bit-identical: it really is a different (quantised) graph.
    assert np.abs(torch_emb - i8).max() > 1e-4


def test_overwrite_input_size_and_info_through_the_cli(export_dir, ref_ckpt, tmp_path, capsys):
    """One float32 conversion covers: refusal without --overwrite, --overwrite dropping the stale int8 file,
    --input-size, and ftk info on the result."""
    from toolkit.embedders import load_embedder
    from toolkit.io import sha256_file
    from toolkit.reference import synthetic_inputs

    out = copy_export(export_dir, tmp_path / "exp")
    before = {p.name: sha256_file(p) for p in out.iterdir()}
    code, _, err = run_cli(["export", ref_ckpt, "--out", out, "--quiet"], capsys)
    _assert_one_line_error(code, err, "--overwrite")
    assert {p.name: sha256_file(p) for p in out.iterdir()} == before

    code, stdout, err = run_cli(["export", ref_ckpt, "--out", out, "--overwrite", "--input-size", "48", "--quiet"],
                                capsys)
    assert code == 0, err
    assert "model_float32.tflite" in stdout and "manifest.json" in stdout
    # float32 only this time: the old int8 file would contradict the new manifest, so it is gone; no temp files.
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model_float32.tflite"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["artifacts"]) == ["model_float32.tflite"]
    assert manifest["spec"]["input_size"] == 48 and manifest["source_checkpoint"]["trained_input_size"] == 32
    assert manifest["artifacts"]["model_float32.tflite"]["input_shape"] == [1, 48, 48, 3]
    faces = synthetic_inputs(48, 6, seed=3)
    tfl = load_embedder(out / "model_float32.tflite").embed(faces)
    torch_embedder = load_embedder(ref_ckpt)
    torch_embedder.spec = torch_embedder.spec.replace(input_size=48)
    assert np.sum(tfl * torch_embedder.embed(faces), axis=1).min() > 0.9999

    code, stdout, _ = run_cli(["info", out], capsys)
    assert code == 0 and "model_float32.tflite: float32" in stdout and "file ok" in stdout
    code, stdout, _ = run_cli(["info", out / "model_float32.tflite", "--json"], capsys)
    info = json.loads(stdout[stdout.index("{"):])
    assert code == 0 and info["kind"] == "tflite" and info["matches_manifest"] is True
    assert info["inspect"]["min_runtime"] and info["spec"]["input_size"] == 48
    code, stdout, _ = run_cli(["info", ref_ckpt], capsys)
    assert code == 0 and "classes: 4" in stdout and "backbone: tiny" in stdout


def test_refuses_module_in_training_mode(ref_ckpt, tmp_path):
    from toolkit.checkpoint import load_checkpoint
    from toolkit.export import export_model

    loaded = load_checkpoint(ref_ckpt)
    loaded.model.train()
    with pytest.raises(InputError, match="training mode"):
        export_model(loaded, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_dynamic_range_int8_is_not_offered(ref_ckpt, tmp_path, capsys):
    from toolkit.export import export_model

    with pytest.raises(InputError, match="dynamic-range"):
        export_model(ref_ckpt, tmp_path / "out", quantize="dynamic", calibration=tmp_path)
    code, _, err = run_cli(["export", ref_ckpt, "--out", tmp_path / "out", "--quantize", "dynamic"], capsys)
    assert code == 2 and "dynamic" in err
    assert not (tmp_path / "out").exists()


def test_int8_needs_enough_calibration_faces(ref_ckpt, faces_csv, tmp_path):
    from toolkit.export import export_model

    with pytest.raises(InputError, match="needs calibration faces"):
        export_model(ref_ckpt, tmp_path / "a", quantize="int8")
    with pytest.raises(InputError, match="at least 16"):
        export_model(ref_ckpt, tmp_path / "b", quantize="int8", calibration=faces_csv, calibration_limit=8)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_residual_scale_folding_is_exact_and_removes_the_mul():
    """Folding on facenet's residual blocks: same outputs in float, and the scalar MUL is gone from the graph."""
    import torch
    from facenet_pytorch.models.inception_resnet_v1 import Block8, Block17, Block35

    from toolkit.models.inception_resnet import fold_residual_scales

    def muls(module, x):
        graph = torch.export.export(module, (x,)).graph
        return sum(1 for n in graph.nodes if n.op == "call_function" and "mul" in str(n.target))

    torch.manual_seed(0)
    for block, channels in ((Block35(scale=0.17), 256), (Block17(scale=0.1), 896), (Block8(noReLU=True), 1792)):
        block.eval()
        x = torch.randn(1, channels, 5, 5)
        with torch.no_grad():
            before = block(x)
            # Tracing is slow on a busy machine: check the graph on the smallest block only.
            muls_before = muls(block, x) if channels == 256 else None
            assert fold_residual_scales(block) == 1
            after = block(x)
            muls_after = muls(block, x) if channels == 256 else None
        assert torch.allclose(before, after, atol=1e-5, rtol=1e-5)
        if muls_before is not None:
            assert muls_before == 1 and muls_after == 0
        assert fold_residual_scales(block) == 0  # idempotent: never folds twice


# --- bad inputs through the real CLI entry point: one error line, exit 2, nothing written ---------------------------
def _assert_one_line_error(code, err, needle):
    lines = error_lines(err)
    assert code == 2, err
    assert len(lines) == 1 and needle in lines[0], err


def test_cli_missing_checkpoint(tmp_path, capsys):
    code, _, err = run_cli(["export", tmp_path / "nope.pt", "--out", tmp_path / "out"], capsys)
    _assert_one_line_error(code, err, "checkpoint not found")
    assert not (tmp_path / "out").exists()


def test_cli_not_a_checkpoint(tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_text("definitely not a checkpoint")
    code, _, err = run_cli(["export", junk, "--out", tmp_path / "out"], capsys)
    _assert_one_line_error(code, err, "not a readable ftk checkpoint")
    assert not (tmp_path / "out").exists()


def test_cli_head_size_mismatch(ref_ckpt, tmp_path, capsys):
    from tests.conftest import write_checkpoint_claiming_classes

    bad = write_checkpoint_claiming_classes(ref_ckpt, tmp_path / "bad.pt", 7)
    code, _, err = run_cli(["export", bad, "--out", tmp_path / "out"], capsys)
    _assert_one_line_error(code, err, "head has 4 outputs but the metadata says 7")
    assert not (tmp_path / "out").exists()


def test_cli_calibration_folder_without_faces(ref_ckpt, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "nofaces" / "Nobody"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (120, 120, 3), dtype=np.uint8)).save(folder / f"noise_{i}.png")
    code, _, err = run_cli(["export", ref_ckpt, "--out", tmp_path / "out", "--quantize", "int8",
                            "--calibration", tmp_path / "nofaces"], capsys)
    _assert_one_line_error(code, err, "calibration faces")
    assert not (tmp_path / "out").exists()


def test_cli_unwritable_out_dir(ref_ckpt, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, err = run_cli(["export", ref_ckpt, "--out", blocker / "out"], capsys)
    _assert_one_line_error(code, err, "cannot create output folder")
    if os.geteuid() != 0:  # root ignores directory permissions
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _, err = run_cli(["export", ref_ckpt, "--out", locked], capsys)
        _assert_one_line_error(code, err, "not writable")
        assert list(locked.iterdir()) == []
