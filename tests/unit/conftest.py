"""Fixtures shared by the export and parity tests: one tiny export on real LFW crops per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.export_helpers import lfw_faces_csv, reference_checkpoint, tiny_export


@pytest.fixture(scope="session")
def faces_csv(lfw_dir, tmp_path_factory) -> Path:
    return lfw_faces_csv(lfw_dir, tmp_path_factory.mktemp("csv"))


@pytest.fixture(scope="session")
def ref_ckpt(tmp_path_factory) -> Path:
    return reference_checkpoint(tmp_path_factory.mktemp("refckpt"))


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory, ref_ckpt, faces_csv) -> Path:
    """Read-only for tests: copy it (export_helpers.copy_export) before changing anything in it."""
    return tiny_export(tmp_path_factory.mktemp("export"), ref_ckpt, faces_csv)
