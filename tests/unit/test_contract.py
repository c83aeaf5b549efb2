"""Every ModelSpec field is acted on or refused (channel order, layout, dtype, value range, L2), a foreign .tflite gets
only the crop it was given, and parity runs with the artifact's spec and refuses a checkpoint whose spec differs.
Real tiny checkpoints and the shared tiny export in the real LiteRT interpreter; no mocks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.unit.export_helpers import error_lines, run_cli
from toolkit.errors import InputError
from toolkit.spec import ModelSpec


def _tiny_spec(**changes) -> ModelSpec:
    from toolkit.models.registry import default_spec

    return default_spec("tiny").replace(**changes)


@pytest.fixture
def foreign_tflite(export_dir, tmp_path) -> Path:
    """The tiny float32 export with its contract removed and no manifest: someone else's model, as ftk sees it."""
    from toolkit.tflite.metadata import remove_contract

    path = tmp_path / "someone" / "model.tflite"
    path.parent.mkdir()
    shutil.copyfile(export_dir / "model_float32.tflite", path)
    assert remove_contract(path)
    return path


# --- the spec refuses what ftk cannot honour --------------------------------------------------------------------------
@pytest.mark.parametrize("changes, needle", [
    ({"input_layout": "NCHW"}, "input_layout 'NCHW' is not supported"),
    ({"input_dtype": "uint8"}, "input_dtype 'uint8' is not supported"),
    ({"channel_order": "GBR"}, "channel_order must be one of"),
    ({"value_range": (255.0, 0.0)}, "low < high"),
    ({"l2_normalized": "yes"}, "l2_normalized must be true or false"),
])
def test_spec_refuses_unsupported_values(changes, needle):
    with pytest.raises(InputError, match=needle):
        _tiny_spec(**changes)
    with pytest.raises(InputError, match=needle):
        ModelSpec.from_dict({**_tiny_spec().to_dict(), **changes})


def test_other_value_range_is_refused_where_the_model_is_fed(tiny_checkpoint, export_dir):
    from toolkit.checkpoint import load_checkpoint
    from toolkit.embedders import TFLiteEmbedder
    from toolkit.models.face_model import embedding_model_from

    spec = _tiny_spec(value_range=(-1.0, 1.0))  # a valid statement, but not one ftk can feed
    loaded = load_checkpoint(tiny_checkpoint)
    loaded.model.spec = spec
    with pytest.raises(InputError, match=r"input values in \[-1.0, 1.0\], but ftk feeds raw 0..255"):
        embedding_model_from(loaded.model)
    with pytest.raises(InputError, match="ftk feeds raw 0..255"):
        TFLiteEmbedder(export_dir / "model_float32.tflite", spec)


# --- channel order: a flip in the graph and on the host ---------------------------------------------------------------
def test_bgr_is_a_channel_flip_in_the_graph_and_on_the_host(tiny_checkpoint, synthetic_faces, foreign_tflite):
    from toolkit.checkpoint import load_checkpoint
    from toolkit.embedders import EmbedderOptions, TorchEmbedder, load_embedder

    faces = synthetic_faces[:8]
    # Host preprocessing: flip first, then (x - mean) / std with mean/std in the backbone's (BGR) order.
    spec = _tiny_spec(mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0), channel_order="BGR")
    x = spec.normalize_nhwc(faces)
    np.testing.assert_allclose(x[..., 0], (faces[..., 2].astype(np.float32) - 10.0) / 2.0)
    np.testing.assert_allclose(x[..., 2], (faces[..., 0].astype(np.float32) - 30.0) / 8.0)
    assert spec.channel_permutation == (2, 1, 0) and _tiny_spec().channel_permutation == (0, 1, 2)

    # The graph (what ships and what the torch embedder runs): a BGR backbone fed RGB == an RGB one fed BGR.
    loaded = load_checkpoint(tiny_checkpoint)
    rgb = TorchEmbedder.from_checkpoint(loaded)
    on_flipped = rgb.embed(np.ascontiguousarray(faces[..., ::-1]))
    loaded.model.spec = loaded.model.spec.replace(channel_order="BGR")
    bgr = TorchEmbedder.from_checkpoint(loaded)
    np.testing.assert_allclose(bgr.embed(faces), on_flipped, atol=1e-6)
    assert np.abs(bgr.embed(faces) - rgb.embed(faces)).max() > 1e-3  # the flip really changes the result

    # A foreign .tflite that expects BGR: ftk flips on the host before feeding it.
    options = dict(input_size=32, normalization="127.5,128")
    f_rgb = load_embedder(foreign_tflite, EmbedderOptions(**options))
    f_bgr = load_embedder(foreign_tflite, EmbedderOptions(**options, channel_order="BGR"))
    assert f_bgr.spec.channel_order == "BGR"
    np.testing.assert_allclose(f_bgr.embed(faces), f_rgb.embed(np.ascontiguousarray(faces[..., ::-1])), atol=1e-6)


# --- l2_normalized: the graph ends with L2 only when the spec says so; embed() is unit length either way ------------
def test_l2_normalized_false_is_honoured(tiny_checkpoint, synthetic_faces):
    import torch

    from toolkit.checkpoint import load_checkpoint
    from toolkit.embedders import TorchEmbedder
    from toolkit.models.face_model import embedding_model_from

    faces = synthetic_faces[:8]
    loaded = load_checkpoint(tiny_checkpoint)
    unit = TorchEmbedder.from_checkpoint(loaded).embed(faces)
    loaded.model.spec = loaded.model.spec.replace(l2_normalized=False)
    module = embedding_model_from(loaded.model)
    with torch.no_grad():
        raw = module(torch.from_numpy(faces.astype(np.float32))).numpy()
    norms = np.linalg.norm(raw, axis=1)
    assert np.abs(norms - 1).max() > 0.05  # the exported graph gives the raw features
    embedded = TorchEmbedder.from_checkpoint(loaded).embed(faces)
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embedded, raw / norms[:, None], atol=1e-6)
    np.testing.assert_allclose(embedded, unit, atol=1e-6)


# --- a foreign .tflite: only the contract it was given -----------------------------------------------------------------
def test_foreign_model_states_the_crop_it_was_given(foreign_tflite, export_dir, synthetic_faces):
    from toolkit.embedders import EmbedderOptions, load_embedder

    with pytest.raises(InputError, match="no contract inside it"):
        load_embedder(foreign_tflite)
    plain = load_embedder(foreign_tflite, EmbedderOptions(input_size=32, normalization="127.5,128"))
    spec = plain.spec
    # Not InceptionResnetV1's box + 20 px, not its name: what was given, and a plain box otherwise.
    assert spec.backbone == "foreign:model.tflite" and spec.crop == "box" and spec.box_margin == 0
    assert spec.mean == (127.5,) * 3 and spec.std == (128.0,) * 3 and spec.l2_normalized is False
    assert spec.embedding_dim == 16 and spec.input_size == 32
    aligned = load_embedder(foreign_tflite, EmbedderOptions(input_size=32, normalization="0,1", crop="align"))
    assert (aligned.spec.crop, aligned.spec.box_margin) == ("align", 0)
    named = load_embedder(foreign_tflite, EmbedderOptions(backbone="inception_resnet_v1", input_size=32,
                                                          normalization="0,1"))
    assert (named.spec.crop, named.spec.box_margin) == ("box", 20)  # asked for by naming the backbone
    # Our graph normalises itself, so "0,1" on the host gives what the file's own contract gives.
    ours = load_embedder(export_dir / "model_float32.tflite")
    identity = load_embedder(foreign_tflite, EmbedderOptions(input_size=32, normalization="0,1"))
    np.testing.assert_allclose(identity.embed(synthetic_faces[:6]), ours.embed(synthetic_faces[:6]), atol=1e-6)


# --- parity: the artifact's spec, and a checkpoint with another spec refused --------------------------------------------
def _checkpoint_with_spec(source: Path, dest: Path, **changes) -> Path:
    import torch

    payload = torch.load(source, weights_only=True)
    meta = json.loads(payload["metadata_json"])
    meta["spec"].update(changes)
    payload["metadata_json"] = json.dumps(meta)
    torch.save(payload, dest)
    return dest


def test_parity_refuses_a_checkpoint_whose_spec_differs(export_dir, ref_ckpt, faces_csv, tmp_path, capsys):
    from toolkit.parity import parity_check

    other = _checkpoint_with_spec(ref_ckpt, tmp_path / "margin.pt", box_margin=8, crop="align")
    with pytest.raises(InputError, match=r"spec differs .*crop 'box' vs 'align'; box_margin 0 vs 8"):
        parity_check(export_dir / "model_float32.tflite", other, images=faces_csv, progress=False)
    code, _, err = run_cli(["parity-check", export_dir / "model_int8.tflite", "--checkpoint", other,
                            "--images", faces_csv], capsys)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and "spec differs" in lines[0], err

    # A lone copy runs with the contract inside it (and says so).
    lone = tmp_path / "lone" / "model_float32.tflite"
    lone.parent.mkdir()
    shutil.copyfile(export_dir / "model_float32.tflite", lone)
    report = parity_check(lone, ref_ckpt, images=faces_csv, limit=8, progress=False)
    assert report.passed and report.precision == "float32"
    assert any("using the contract embedded in the file" in w for w in report.warnings)
