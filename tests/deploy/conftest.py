"""Tiny real .tflite exports (litert-torch, float32 + static int8 + dynamic-range int8) for inspect/deploy tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from toolkit.io import copy_writable

FIXTURE_ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "android_app"
FIXTURE_APP = FIXTURE_ROOT / "FaceRecognition"
GRADLE_VARIANTS = FIXTURE_ROOT / "gradle_variants"


def _convert_tiny(out_dir: Path) -> dict[str, Path]:
    """Convert a seeded tiny EmbeddingModel three ways with litert-torch (a few seconds each)."""
    import torch
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer, quant_config
    from torchao.quantization.pt2e import quantize_pt2e

    from toolkit.models.face_model import EmbeddingModel
    from toolkit.models.registry import create_backbone, default_spec

    spec = default_spec("tiny")
    torch.manual_seed(0)
    model = EmbeddingModel(create_backbone(spec), spec).eval()
    generator = torch.Generator().manual_seed(1)
    sample = (torch.rand(1, spec.input_size, spec.input_size, 3, generator=generator) * 255,)
    paths = {"float32": out_dir / "model_float32.tflite"}
    litert_torch.convert(model, sample).export(str(paths["float32"]))
    for variant, dynamic in (("int8", False), ("dynamic_int8", True)):
        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))
        prepared = quantize_pt2e.prepare_pt2e(torch.export.export(model, sample).module(), quantizer)
        for _ in range(4):  # calibration passes for the static variant's activation ranges
            prepared(torch.rand(1, spec.input_size, spec.input_size, 3, generator=generator) * 255)
        quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        paths[variant] = out_dir / f"model_{variant}.tflite"
        litert_torch.convert(quantized, sample, quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer)) \
            .export(str(paths[variant]))
    return paths


def write_manifest(export_dir: Path, spec_dict: dict, files: dict[str, Path]) -> Path:
    """A manifest with the keys ftk export writes: top-level "spec" and "artifacts"."""
    from toolkit.io import sha256_file

    manifest = {
        "spec": spec_dict,
        "input": {"value_range": spec_dict.get("value_range", [0.0, 255.0]), "normalization": "in-graph: (x - mean) / std"},
        "artifacts": {path.name: {"precision": variant, "sha256": sha256_file(path)}
                      for variant, path in files.items()},
    }
    path = export_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path


@pytest.fixture(scope="session")
def tiny_tflite_models(tmp_path_factory) -> dict[str, Path]:
    """{"float32", "int8", "dynamic_int8"} -> .tflite path (all in one folder, no manifest; converted once per test
    run, read-only)."""
    from tests.conftest import built_once

    folder = built_once(tmp_path_factory, "deploy-tiny-tflite", _convert_tiny)
    return {variant: folder / f"model_{variant}.tflite" for variant in ("float32", "int8", "dynamic_int8")}


@pytest.fixture(scope="session")
def tiny_export_master(tmp_path_factory, tiny_tflite_models) -> Path:
    """An export folder as ftk export lays it out: model_float32.tflite, model_int8.tflite, manifest.json."""
    from toolkit.models.registry import default_spec

    export_dir = tmp_path_factory.mktemp("tiny_export")
    files = {}
    for variant in ("float32", "int8"):
        files[variant] = export_dir / tiny_tflite_models[variant].name
        shutil.copy(tiny_tflite_models[variant], files[variant])
    write_manifest(export_dir, default_spec("tiny").to_dict(), files)
    return export_dir


@pytest.fixture
def tiny_export(tiny_export_master, tmp_path) -> Path:
    """A private copy of the tiny export folder (tests may edit its manifest)."""
    return Path(shutil.copytree(tiny_export_master, tmp_path / "export"))


@pytest.fixture
def android_app(tmp_path) -> Path:
    """A private copy of the fixture Android app checkout (Kotlin DSL)."""
    return Path(shutil.copytree(FIXTURE_APP, tmp_path / "app_checkout"))


@pytest.fixture
def private_state_dir(tmp_path, monkeypatch) -> Path:
    """A private ftk state folder (journal digests, locks), inherited by CLI subprocesses."""
    path = tmp_path / "state"
    monkeypatch.setenv("FTK_STATE_DIR", str(path))
    return path


# --- the real app (../shared/apps/face-data-matching-app) -------------------------------------------------------
# The crop, sizes and embedding dims of the two real backbones on the tiny architecture: what the app code does
# depends only on the contract (ModelSpec), and these convert in seconds. scripts/main.sh deploys the real int8
# MobileFaceNet into the real app.
SHAPED_LIKE = {"mobilefacenet": "align112", "inception_resnet_v1": "box160"}


def shaped_spec(like: str):
    from dataclasses import replace

    from toolkit.models.registry import default_spec

    real = default_spec(like)
    return replace(default_spec("tiny"), input_size=real.input_size, embedding_dim=real.embedding_dim,
                   crop=real.crop, box_margin=real.box_margin)


def _export_shaped(folder: Path) -> None:
    import torch

    from toolkit.checkpoint import CheckpointMeta, save_checkpoint
    from toolkit.export import export_model
    from toolkit.models.face_model import FaceModel

    for like, name in SHAPED_LIKE.items():
        torch.manual_seed(0)
        spec = shaped_spec(like)
        checkpoint = folder / f"{name}.pt"
        save_checkpoint(checkpoint, FaceModel(spec, 2).eval(),
                        CheckpointMeta(spec=spec, num_classes=2, class_names=["a", "b"], weights_source="random"))
        export_model(checkpoint, folder / name, progress=False)


@pytest.fixture(scope="session")
def shaped_exports(tmp_path_factory) -> dict[str, Path]:
    """{"mobilefacenet": export folder, "inception_resnet_v1": ...}: tiny models with those backbones' contracts
    (112 px, 128-d, 5-point alignment; 160 px, 512-d, box + 20 px), float32, converted once per run (read-only)."""
    from tests.conftest import built_once

    folder = built_once(tmp_path_factory, "deploy-shaped-exports", _export_shaped)
    return {like: folder / name for like, name in SHAPED_LIKE.items()}


def real_app_source(shared_dir: Path) -> Path:
    source = shared_dir / "apps" / "face-data-matching-app"
    if not (source / "app").is_dir():
        pytest.skip(f"the real app is not at {source}")
    return source


@pytest.fixture
def real_app(shared_dir, tmp_path) -> Path:
    """A private, writable copy of the real face-data-matching-app (skips with a reason when ../shared lacks it)."""
    return copy_writable(real_app_source(shared_dir), tmp_path / "face-data-matching-app")
