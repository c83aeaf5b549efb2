"""Spec, checkpoint round trip and the CLI's instant --help."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from toolkit.errors import CheckpointError, InputError
from toolkit.spec import ModelSpec, parse_normalization


def test_spec_round_trip_and_unknown_key():
    from toolkit.models.registry import default_spec

    spec = default_spec("inception_resnet_v1")
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    bad = spec.to_dict() | {"input_sise": 3}
    with pytest.raises(InputError, match="did you mean 'input_size'"):
        ModelSpec.from_dict(bad)


def test_spec_normalisation_matches_facenet():
    from toolkit.models.registry import default_spec

    spec = default_spec("inception_resnet_v1")
    faces = np.full((1, 160, 160, 3), 255, np.uint8)
    x = spec.to_model_input(faces)
    assert x.shape == (1, 3, 160, 160)
    assert np.allclose(x, (255 - 127.5) / 128)
    with pytest.raises(InputError, match="N x 160 x 160 x 3"):
        spec.check_faces(np.zeros((1, 112, 112, 3), np.uint8))


def test_parse_normalization():
    assert parse_normalization("127.5,128") == ((127.5,) * 3, (128.0,) * 3)
    with pytest.raises(InputError):
        parse_normalization("1,2,3")


def test_checkpoint_round_trip(tiny_checkpoint, synthetic_faces):
    from toolkit.checkpoint import load_checkpoint
    from toolkit.embedders import TorchEmbedder

    loaded = load_checkpoint(tiny_checkpoint)
    assert loaded.meta.num_classes == 4 and loaded.meta.class_names == list("abcd")
    emb = TorchEmbedder.from_checkpoint(loaded).embed(synthetic_faces[:5])
    assert emb.shape == (5, 16)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    # BN calibrated: different inputs give clearly different embeddings.
    sims = emb @ emb.T
    assert sims[np.triu_indices(5, 1)].min() < 0.95


def test_checkpoint_head_mismatch(tiny_checkpoint, tmp_path):
    from tests.conftest import write_checkpoint_claiming_classes
    from toolkit.checkpoint import load_checkpoint

    bad = write_checkpoint_claiming_classes(tiny_checkpoint, tmp_path / "bad.pt", 7)

    with pytest.raises(CheckpointError, match="head has 4 outputs but the metadata says 7"):
        load_checkpoint(bad)


def test_not_a_checkpoint(tmp_path):
    from toolkit.checkpoint import load_checkpoint

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable ftk checkpoint"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_help_is_instant_and_imports_no_torch():
    code = (
        "import sys, time; t=time.time(); from toolkit.cli import cli; "
        "import click.testing as ct; r=ct.CliRunner().invoke(cli, ['--help']); "
        "assert r.exit_code == 0, r.output; "
        "heavy=[m for m in ('torch','litert_torch','ai_edge_litert','facenet_pytorch') if m in sys.modules]; "
        "print(heavy, time.time()-t)"
    )
    start = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[]"), out
    assert time.time() - start < 5  # generous: the point is no multi-second torch import


def test_cli_error_is_one_line_and_nonzero(tmp_path):
    result = subprocess.run([sys.executable, "-m", "toolkit.cli", "init-checkpoint", "--out", str(tmp_path / "x.pt"),
                             "--backbone", "tinyy"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown backbone 'tinyy'" in result.stderr and "did you mean 'tiny'" in result.stderr
    assert not (tmp_path / "x.pt").exists()
