"""--verify-runtime for real: tensorflow-cpu 2.12 (the app's runtime) in its own cached venv vs ai-edge-litert.

Slow the first time (builds the venv: a few minutes, ~1.3 GB). The venv is cached under $FTK_RUNTIME_CACHE, or
~/.cache/ftk/runtimes when unset, so later runs reuse it (the session's tmp FTK_CACHE_DIR would throw it away).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from toolkit.deploy import deploy
from toolkit.deploy.runtime_verify import runtime_requirements, verification_faces


@pytest.fixture
def persistent_runtime_cache(monkeypatch):
    if not os.environ.get("FTK_RUNTIME_CACHE"):
        monkeypatch.setenv("FTK_RUNTIME_CACHE", str(Path.home() / ".cache" / "ftk" / "runtimes"))


def test_requirements_pin_numpy_for_old_tensorflow():
    assert runtime_requirements("2.12.0") == ["tensorflow-cpu==2.12.0", "numpy<1.24"]
    assert runtime_requirements("2.16.1")[0] == "tensorflow-cpu==2.16.1"


def test_verification_faces_are_seeded_images():
    a, b = verification_faces(32), verification_faces(32)
    assert a.shape == (8, 32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert a.std() > 20  # not flat


@pytest.mark.slow
def test_verify_runtime_tensorflow_2_12_matches_litert(tiny_export, android_app, persistent_runtime_cache):
    result = deploy(tiny_export, android_app, variant="int8", threshold=0.4, verify_runtime=True)
    check = result.runtime_verify
    print(f"\nruntime verify int8: tf {check['tensorflow_version']} cosine min {check['cosine_min']:.6f} "
          f"mean {check['cosine_mean']:.6f} max|diff| {check['max_abs_diff']:.2e} venv build {check['venv_build_s']} s")
    assert check["tensorflow_version"] == "2.12.0"
    assert check["num_inputs"] == 8
    assert check["passed"] and check["cosine_min"] >= 0.999
    assert result.applied
    float_result = deploy(tiny_export, android_app, variant="float32", threshold=0.4, verify_runtime=True,
                          asset_name="ftk_tiny_float32.tflite")
    fcheck = float_result.runtime_verify
    print(f"runtime verify float32: cosine min {fcheck['cosine_min']:.7f} max|diff| {fcheck['max_abs_diff']:.2e}")
    assert fcheck["cosine_min"] >= 0.99999  # same float kernels: agreement to rounding
