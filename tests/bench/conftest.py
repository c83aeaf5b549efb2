"""Fixtures for the bench tests: a tiny exported .tflite (real litert-torch conversion) and the sandboxed adbd."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.bench.adbd_sandbox import AdbdSandbox, sandbox_unavailable_reason

REPO_ROOT = Path(__file__).resolve().parents[2]
STANDIN = REPO_ROOT / "android_harness" / "standin_benchmark_model.py"


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint, tmp_path_factory) -> Path:
    """model_float32.tflite + manifest.json from the tiny checkpoint (ftk export when present, else litert-torch)."""
    out = tmp_path_factory.mktemp("tiny_export")
    try:
        from toolkit.export import export_model
    except ImportError:
        export_model = None
    if export_model is not None:
        export_model(tiny_checkpoint, out, overwrite=True, progress=False)
    else:  # the export stage is not there yet: convert directly, with a manifest holding the spec
        import litert_torch
        import torch

        from toolkit.checkpoint import load_checkpoint
        from toolkit.io import write_json_atomic
        from toolkit.models.face_model import embedding_model_from

        loaded = load_checkpoint(tiny_checkpoint)
        spec = loaded.model.spec
        sample = torch.full((1, spec.input_size, spec.input_size, 3), 127.5)
        litert_torch.convert(embedding_model_from(loaded.model), (sample,)).export(str(out / "model_float32.tflite"))
        write_json_atomic(out / "manifest.json", {"spec": spec.to_dict()})
    assert (out / "model_float32.tflite").is_file()
    return out


@pytest.fixture(scope="session")
def tiny_tflite(tiny_export) -> Path:
    return tiny_export / "model_float32.tflite"


@pytest.fixture()
def adbd(tmp_path):
    """The real AOSP adbd in private namespaces, reached at ``adbd.serial`` (127.0.0.1:<port>); killed by PID."""
    reason = sandbox_unavailable_reason()
    if reason:
        pytest.skip(reason)
    sandbox = AdbdSandbox(tmp_path / "adbd.log").start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(scope="session")
def standin_runner() -> Path:
    assert STANDIN.is_file()
    return STANDIN


@pytest.fixture(scope="session")
def device_python() -> str:
    """The Python the loopback device runs the stand-in with: this one (it has ai-edge-litert)."""
    return sys.executable


def have_sh() -> bool:
    return shutil.which("sh") is not None
