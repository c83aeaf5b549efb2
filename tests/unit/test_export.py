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
                                                            "model_int8.tflite", "parity_faces.npz"]
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
    assert quant["method"] == "pt2e-static" and quant["calibration"]["faces"] == 40  # of 50 read: the limit, 10 held out
    # The tiny backbone has no residual blocks to fold.
    assert quant["folded_residual_scales"] == 0
    assert i8["size_bytes"] < f32["size_bytes"]
    # Stage times, per artifact and for the export; the float ops of the int8 graph, each with a reason.
    stages = manifest["export"]["stages_seconds"]
    assert {"load", "crops", "fold", "calibrate", "convert", "check"} <= set(stages)
    assert all(v >= 0 for v in stages.values()) and stages["convert"] > 0
    assert {"calibrate", "convert", "check"} <= set(i8["export_stages"])
    assert i8["float_ops"] and all(v["count"] >= 1 and v["why"] for v in i8["float_ops"].values())
    assert "DEQUANTIZE" in i8["float_ops"] and "CONV_2D" not in i8["float_ops"]


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


# --- int8 graph structure, float16, disk space --------------------------------------------------------------------
class _Residual(__import__("torch").nn.Module):
    """conv -> ReLU6, a residual block (x + conv(x)), a global depthwise conv, 1x1 conv: MobileFaceNet in small."""

    def __init__(self):
        from torch import nn

        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.res = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
                                 nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.gd = nn.Conv2d(8, 8, 16, groups=8, bias=False)
        self.out = nn.Conv2d(8, 16, 1)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.res(x)
        return self.out(self.gd(x)).flatten(1)


def _residual_model():
    import torch

    from toolkit.models.face_model import EmbeddingModel
    from toolkit.models.registry import default_spec

    torch.manual_seed(0)
    backbone = _Residual()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in backbone.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return EmbeddingModel(backbone, default_spec("tiny")).eval()


def test_int8_residual_add_is_integer_and_keep_float_keeps_named_layers(faces_csv, tmp_path):
    """The residual ADD runs in int8 (QUANTIZE only at the input, DEQUANTIZE only before the L2 tail); layers named
    in float_layers stay float, at the tail or in the middle (with a DEQUANTIZE before and a QUANTIZE after), and
    the manifest helper says why."""
    from toolkit.data.faces import load_face_crops
    from toolkit.export import float_ops_of, quantised_kept_layers, quantize_int8_static, sample_input
    from toolkit.tflite.inspect import inspect_tflite

    module = _residual_model()
    faces = load_face_crops(faces_csv, module.spec, limit=24, progress=False).images
    counts = {}
    for name, layers in (("int", ()), ("kept", ("gd", "out")), ("middle", ("res",))):
        path = tmp_path / f"{name}.tflite"
        info = quantize_int8_static(module, sample_input(module.spec), faces, path, float_layers=layers)
        ops = {(o["name"], o["version"]): o["count"] for o in inspect_tflite(path).to_dict()["ops"]}
        counts[name] = (ops, info, float_ops_of(path, layers), quantised_kept_layers(path, layers))
    ops, info, float_ops, _ = counts["int"]
    assert info["integer_adds"] == 1 and info["fused_conv_relu6"] == 2 and info["float_nodes"] == 0
    assert ops[("ADD", 2)] == 1 and ("ADD", 1) not in ops  # v2: int8 ADD
    assert ops[("QUANTIZE", 1)] == 1 and ops[("DEQUANTIZE", 2)] == 1
    assert "ADD" not in float_ops and "DEQUANTIZE" in float_ops
    ops, info, float_ops, still = counts["kept"]
    assert info["float_nodes"] >= 2 and still == []
    # (one opcode version per op type, so the float convs are found by their float32 outputs)
    assert float_ops["CONV_2D"]["count"] == 1 and float_ops["DEPTHWISE_CONV_2D"]["count"] == 1
    assert "kept in float" in float_ops["CONV_2D"]["why"] and ops[("QUANTIZE", 1)] == 1
    ops, info, float_ops, still = counts["middle"]  # the residual branch in float, the ADD after it int8
    assert still == [] and float_ops["CONV_2D"]["count"] == 2 and ops[("QUANTIZE", 1)] == 2
    assert info["integer_adds"] == 1 and "ADD" not in float_ops


def test_batched_calibration_observes_the_same_ranges(faces_csv):
    """Observation on the batch-dimension graph fills the batch-1 graph's observers: the exact min/max each
    observer saw are those of face-by-face calibration."""
    import torch
    from litert_torch.quantize.pt2e_quantizer import get_symmetric_quantization_config

    from toolkit.data.faces import load_face_crops
    from toolkit.export import _ftk_quantizer, _observers, prepare_and_calibrate, sample_input

    module = _residual_model()
    faces = load_face_crops(faces_csv, module.spec, limit=20, progress=False).images
    ranges = {}
    for batch in (1, 8):
        q = _ftk_quantizer(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        prepared, info = prepare_and_calibrate(module, sample_input(module.spec), faces, q, batch_size=batch)
        assert info["batched"] is (batch > 1) and info["batch_size"] == batch
        ranges[batch] = {name: (obs.min_val.clone(), obs.max_val.clone()) for name, obs, _, _ in _observers(prepared)}
    assert ranges[1].keys() == ranges[8].keys() and len(ranges[1]) > 5
    for name, (lo, hi) in ranges[1].items():
        assert torch.isfinite(lo).all() and torch.allclose(lo, ranges[8][name][0], atol=1e-5), name
        assert torch.allclose(hi, ranges[8][name][1], atol=1e-5), name


def test_float16_export_through_the_cli(ref_ckpt, faces_csv, tmp_path, capsys):
    """--quantize float16: float16 weights inside the flatbuffer (no external buffers: the app's 2.12 cannot read
    those), float32 I/O, close to float32 and smaller; parity picks the float16 tolerances."""
    from toolkit.data.faces import load_face_crops
    from toolkit.embedders import load_embedder
    from toolkit.parity import guess_precision

    out = tmp_path / "f16"
    code, stdout, err = run_cli(["export", ref_ckpt, "--out", out, "--quantize", "float16", "--quiet"], capsys)
    assert code == 0, err
    assert "stages: load" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model_float16.tflite", "model_float32.tflite"]
    manifest = json.loads((out / "manifest.json").read_text())
    f16, f32 = manifest["artifacts"]["model_float16.tflite"], manifest["artifacts"]["model_float32.tflite"]
    assert f16["precision"] == "float16" and f16["external_buffers"] is False
    assert f16["input_dtype"] == "float32" and f16["output_dtype"] == "float32"
    assert {"name": "DEQUANTIZE", "version": 3} in [{k: o[k] for k in ("name", "version")} for o in f16["ops"]]
    assert f16["size_bytes"] < 0.75 * f32["size_bytes"]
    assert tuple(int(v) for v in f16["min_runtime"].split(".")) <= (2, 12, 0)  # the app's runtime
    torch_embedder = load_embedder(ref_ckpt)
    faces = load_face_crops(faces_csv, torch_embedder.spec, limit=12, progress=False).images
    cos = np.sum(torch_embedder.embed(faces) * load_embedder(out / "model_float16.tflite").embed(faces), axis=1)
    assert cos.min() > 0.999 and cos.mean() > 0.9999
    lone = tmp_path / "lone.tflite"
    lone.write_bytes((out / "model_float16.tflite").read_bytes())
    assert guess_precision(lone) == "float16" and guess_precision(out / "model_float32.tflite") == "float32"


def test_export_refuses_a_full_disk_up_front(ref_ckpt, tmp_path, capsys):
    """A 64 KiB tmpfs cannot take the artifacts: exit 2 'no space left on <dir>' before converting, nothing left."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (no CAP_SYS_ADMIN in this container)")
    try:
        code, _, err = run_cli(["export", ref_ckpt, "--out", mnt / "out"], capsys)
        _assert_one_line_error(code, err, f"no space left on {mnt / 'out'}")
        assert list(mnt.iterdir()) == []
        (mnt / "out").mkdir()
        code, _, err = run_cli(["export", ref_ckpt, "--out", mnt / "out"], capsys)
        _assert_one_line_error(code, err, "no space left on")
        assert list((mnt / "out").iterdir()) == []  # no temp folder or file left behind
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_float16_loads_on_the_apps_tflite_2_12(ref_ckpt, tmp_path):
    """The app's pinned runtime (tensorflow-cpu 2.12 in its own venv, cached under ~/.cache/ftk/runtimes) loads the
    float16 file and computes what ai-edge-litert computes."""
    from toolkit.deploy.runtime_verify import verify_runtime
    from toolkit.export import export_model

    result = export_model(ref_ckpt, tmp_path / "f16", quantize="float16", progress=False)
    verified = verify_runtime(result.artifacts["float16"].path, result.spec, "2.12.0")
    assert verified.tensorflow_version == "2.12.0"
    assert verified.passed and verified.cosine_min >= 0.9999, verified


def test_quiet_export_prints_no_converter_lines(ref_ckpt, tmp_path):
    """--quiet silences litert-torch's task log and the converter's own C++/absl lines (file descriptor 2), and
    ftk's INFO lines: on this CPU and, by construction (tests/unit/test_native_logs.py), on AVX-512 ones."""
    import re
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "toolkit.cli", "export", str(ref_ckpt), "--out", str(tmp_path / "q"),
                          "--quiet"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    native_line = re.compile(r"^([IWEF]\d{4} |INFO|WARNING|ERROR)"  # absl/glog prefixes, TFLite's, ftk's log
                             r"|flatbuffer_export|\[START\]|\[ DONE\]|absl|oneDNN|XNNPACK")
    noisy = [line for line in (out.stderr + out.stdout).splitlines() if native_line.search(line)]
    assert noisy == [], noisy
    assert (tmp_path / "q" / "model_float32.tflite").is_file()
