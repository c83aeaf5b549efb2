"""Fixtures shared by the export and parity tests: one tiny export on real LFW crops per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import built_once
from tests.unit.export_helpers import lfw_faces_csv, reference_checkpoint, tiny_export


@pytest.fixture(scope="session")
def faces_csv(lfw_dir, tmp_path_factory) -> Path:
    return lfw_faces_csv(lfw_dir, tmp_path_factory.mktemp("csv"))


@pytest.fixture(scope="session")
def ref_ckpt(tmp_path_factory) -> Path:
    return reference_checkpoint(tmp_path_factory.mktemp("refckpt"))


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory, ref_ckpt, faces_csv) -> Path:
    """float32 + int8 export of the tiny reference checkpoint on real LFW crops, converted once per test run.
    Read-only for tests: copy it (export_helpers.copy_export) before changing anything in it."""
    return built_once(tmp_path_factory, "tiny-reference-export",
                      lambda folder: tiny_export(folder, ref_ckpt, faces_csv)) / "tiny_export"
