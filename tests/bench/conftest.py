"""Fixtures for the bench tests: a tiny exported .tflite (real litert-torch conversion) and the sandboxed adbd."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.bench.adbd_sandbox import AdbdSandbox, sandbox_unavailable_reason
from tests.conftest import copy_of

REPO_ROOT = Path(__file__).resolve().parents[2]
STANDIN = REPO_ROOT / "android_harness" / "standin_benchmark_model.py"


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint_export, tmp_path_factory) -> Path:
    """This worker's copy of the run's one tiny export (model_float32.tflite + manifest.json)."""
    return copy_of(tiny_checkpoint_export, tmp_path_factory, "bench_export")


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
