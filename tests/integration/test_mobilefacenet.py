"""The pretrained MobileFaceNet from ../shared: exact load, ONNX parity, --backbone/--weights paths, TFLite export.

Skips with a reason when ../shared is absent (set FTK_SHARED to point elsewhere).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

WEIGHTS = "mobilefacenet.pt"
ONNX = "mobilefacenet.onnx"


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


@pytest.fixture(scope="module")
def pretrained_backbone(mobilefacenet_dir):
    from toolkit.models.registry import create_backbone, default_spec, load_backbone_weights, load_state_dict_file

    spec = default_spec("mobilefacenet")
    backbone = create_backbone(spec)
    load_backbone_weights(backbone, load_state_dict_file(mobilefacenet_dir / WEIGHTS), WEIGHTS)
    return backbone.eval()


@pytest.fixture(scope="module")
def aligned_faces(face_folder) -> np.ndarray:
    """Real LFW faces, MTCNN-detected and aligned to the 112 template (6 people x up to 6 images)."""
    from toolkit.data.faces import load_face_crops
    from toolkit.models.registry import default_spec

    crops = load_face_crops(face_folder, default_spec("mobilefacenet"), progress=False)
    assert len(crops) >= 24, f"only {len(crops)} faces found in {face_folder}"
    return crops


@pytest.fixture(scope="module")
def onnx_session(mobilefacenet_dir):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (dev extra) is needed for the ONNX reference")
    return ort.InferenceSession(str(mobilefacenet_dir / ONNX), providers=["CPUExecutionProvider"])


def _onnx_features(session, nchw: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: nchw[i : i + 1]})[0] for i in range(len(nchw))])


def test_state_dict_loads_exactly(mobilefacenet_dir, pretrained_backbone):
    import torch

    sd = torch.load(mobilefacenet_dir / WEIGHTS, map_location="cpu", weights_only=True)
    own = pretrained_backbone.state_dict()
    assert set(own) == set(sd)
    assert all(tuple(own[k].shape) == tuple(sd[k].shape) for k in sd)
    assert torch.equal(own["features.12.conv.1.0.weight"], sd["features.12.conv.1.0.weight"])
    assert 0.9e6 < sum(p.numel() for p in pretrained_backbone.parameters()) < 1.1e6


def test_matches_the_onnx_reference(pretrained_backbone, onnx_session, aligned_faces):
    import torch

    from toolkit.models.registry import default_spec

    spec = default_spec("mobilefacenet")
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, (4, 3, 112, 112)).astype(np.float32)
    faces = spec.to_model_input(aligned_faces.images[:12])  # the spec's ImageNet normalisation, as the README says
    for inputs in (noise, faces):
        reference = _onnx_features(onnx_session, inputs)
        with torch.no_grad():
            ours = pretrained_backbone(torch.from_numpy(inputs)).numpy()
        assert ours.shape == (len(inputs), 128)
        # Raw features (not L2-normalised): magnitudes must match too, not just directions.
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), np.linalg.norm(reference, axis=1), rtol=1e-3)
        assert _cosines(ours, reference).min() >= 0.9999


def test_plain_state_dict_embedder_separates_identities(mobilefacenet_dir, aligned_faces):
    from toolkit.embedders import EmbedderOptions, load_embedder
    from toolkit.errors import CheckpointError

    embedder = load_embedder(mobilefacenet_dir / WEIGHTS, EmbedderOptions(backbone="mobilefacenet"))
    assert embedder.spec.input_size == 112 and embedder.spec.embedding_dim == 128 and embedder.spec.crop == "align"
    emb = embedder.embed(aligned_faces.images)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    people = np.array([Path(p).parent.name for p in aligned_faces.paths])
    sims = emb @ emb.T
    same = (people[:, None] == people[None, :]) & ~np.eye(len(people), dtype=bool)
    different = people[:, None] != people[None, :]
    # A pretrained face model: genuine pairs score far above impostors (a random network would not).
    assert sims[same].mean() - sims[different].mean() > 0.4
    assert np.median(sims[same]) > np.percentile(sims[different], 99)

    with pytest.raises(CheckpointError, match="backbone"):
        load_embedder(mobilefacenet_dir / WEIGHTS, EmbedderOptions(backbone="inception_resnet_v1"))


def test_init_checkpoint_with_weights_cli(mobilefacenet_dir, tmp_path, aligned_faces):
    from click.testing import CliRunner

    from toolkit.checkpoint import load_checkpoint
    from toolkit.cli import cli
    from toolkit.embedders import EmbedderOptions, TorchEmbedder, load_embedder

    out = tmp_path / "mfn.pt"
    result = CliRunner().invoke(cli, ["init-checkpoint", "--backbone", "mobilefacenet", "--num-classes", "5",
                                       "--weights", str(mobilefacenet_dir / WEIGHTS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    loaded = load_checkpoint(out)
    assert loaded.meta.spec.backbone == "mobilefacenet" and loaded.meta.num_classes == 5
    assert loaded.meta.weights_source.startswith("pretrained:mobilefacenet.pt")
    faces = aligned_faces.images[:8]
    from_checkpoint = TorchEmbedder.from_checkpoint(loaded).embed(faces)
    from_weights = load_embedder(mobilefacenet_dir / WEIGHTS, EmbedderOptions(backbone="mobilefacenet")).embed(faces)
    np.testing.assert_allclose(from_checkpoint, from_weights, atol=1e-5)


def test_rejects_an_input_size_the_network_cannot_reduce():
    from toolkit.errors import InputError
    from toolkit.models.registry import create_backbone, default_spec

    with pytest.raises(InputError, match="divisible by 16"):
        create_backbone(default_spec("mobilefacenet", input_size=100))


@pytest.mark.slow
def test_exports_to_float32_and_int8_tflite(mobilefacenet_dir, tmp_path, face_folder, aligned_faces):
    """litert-torch float32 and PT2E int8 through ``toolkit.export``, run in the LiteRT interpreter."""
    export = pytest.importorskip("toolkit.export", reason="the export stage is not in this checkout")
    from toolkit.embedders import EmbedderOptions, load_embedder
    from toolkit.init_checkpoint import init_checkpoint

    ckpt = init_checkpoint(tmp_path / "mfn.pt", backbone="mobilefacenet", weights=mobilefacenet_dir / WEIGHTS,
                           progress=False).path
    result = export.export_model(ckpt, tmp_path / "export", quantize="int8,float16", calibration=face_folder,
                                 progress=False)
    assert result.manifest["spec"]["input_size"] == 112 and result.manifest["embedding_dim"] == 128
    faces = aligned_faces.images
    reference = load_embedder(mobilefacenet_dir / WEIGHTS, EmbedderOptions(backbone="mobilefacenet")).embed(faces)
    float32 = load_embedder(result.artifacts["float32"].path, EmbedderOptions(num_threads=1)).embed(faces)
    int8 = load_embedder(result.artifacts["int8"].path, EmbedderOptions(num_threads=1)).embed(faces)
    assert _cosines(float32, reference).min() >= 0.9999
    int8_cos = _cosines(int8, reference)
    # Every conv + ReLU6 pair is quantised as one step (range measured after the clamp); without that, int8
    # MobileFaceNet measured 0.967 mean / 0.938 min cosine on such faces; with it 0.995 / 0.991.
    assert result.manifest["artifacts"]["model_int8.tflite"]["quantization"]["fused_conv_relu6"] == 32
    assert int8_cos.mean() >= 0.99 and int8_cos.min() >= 0.95, int8_cos
    # Fully integer: the 12 residual ADDs run in int8; one QUANTIZE at the input, one DEQUANTIZE before the
    # L2-normalisation tail, and the float ops left are listed with a reason.
    entry = result.manifest["artifacts"]["model_int8.tflite"]
    ops = {op["name"]: op["count"] for op in entry["ops"]}
    assert entry["quantization"]["integer_adds"] == 12 and entry["quantization"]["folded_final_batchnorm"] == 1
    assert ops["QUANTIZE"] == 1 and ops["DEQUANTIZE"] == 1 and ops["ADD"] == 12, ops
    assert "ADD" not in entry["float_ops"] and all(v["why"] for v in entry["float_ops"].values())
    # float16: float16 weights, float32 I/O, about half the float32 file, parity well above int8's.
    f16 = result.manifest["artifacts"]["model_float16.tflite"]
    assert 0.45 < f16["size_bytes"] / result.manifest["artifacts"]["model_float32.tflite"]["size_bytes"] < 0.6
    assert not f16["external_buffers"] and f16["input_dtype"] == "float32"
    float16 = load_embedder(result.artifacts["float16"].path, EmbedderOptions(num_threads=1)).embed(faces)
    assert _cosines(float16, reference).mean() >= 0.9999 and _cosines(float16, reference).min() >= 0.999
