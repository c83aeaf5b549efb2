"""The real architecture end to end: InceptionResnetV1 (random init, BatchNorm re-estimated on real LFW crops so
embeddings differ between faces), exported by the real litert-torch to float32 and folded PT2E int8, run by the
real LiteRT interpreter, and parity-checked on held-out real LFW face crops."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.export_helpers import lfw_faces_csv

pytestmark = pytest.mark.slow


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3])


def test_inception_resnet_v1_export_and_parity_on_lfw(face_folder, lfw_dir, tmp_path_factory):
    from toolkit.export import export_model
    from toolkit.init_checkpoint import init_checkpoint
    from toolkit.parity import parity_check

    root = tmp_path_factory.mktemp("irv1")
    ckpt = init_checkpoint(root / "irv1.pt", backbone="inception_resnet_v1", calibration=face_folder,
                           calibration_limit=36, progress=False).path
    # 24 calibration faces (the minimum is 16): histogram-observer calibration dominates this test's run time.
    result = export_model(ckpt, root / "export", quantize="int8", calibration=face_folder, calibration_limit=24,
                          progress=False)
    f32, i8 = result.artifacts["float32"], result.artifacts["int8"]
    assert result.spec.input_size == 160 and result.spec.embedding_dim == 512
    # 5 x Block35, 10 x Block17, 5 x Block8 and the final Block8.
    assert result.folded_blocks == 21
    assert i8.info["quantization"]["fold_max_abs_diff"] < 1e-4
    # int8 weights: about a quarter of the float file.
    assert i8.size_bytes < 0.3 * f32.size_bytes
    ops = {op["name"]: op["count"] for op in i8.info["ops"]}
    # Folding leaves no residual-scale MULs, and no TRANSPOSE pairs around them (unfolded: ~23 MUL, ~43 TRANSPOSE).
    assert ops.get("MUL", 0) <= 3 and ops.get("TRANSPOSE", 0) <= 2, ops
    assert not i8.info["hybrid_int8"] and "int8" in i8.info["weight_types"]
    # Every residual ADD is integer; float only where the manifest says why (input SUB, L2 tail).
    assert "ADD" not in i8.info["float_ops"], i8.info["float_ops"]
    assert ops.get("QUANTIZE", 0) <= 4 and ops.get("DEQUANTIZE", 0) == 1, ops
    assert {"load", "crops", "fold", "calibrate", "convert", "check"} <= set(result.stages)
    for art in (f32, i8):
        assert art.info["min_runtime"] and not art.info["external_buffers"]
        # The app ships TFLite 2.12: both variants must load there.
        assert _version(art.info["min_runtime"]) <= (2, 12, 0), art.info["min_runtime"]

    # Parity on faces that were in neither the BatchNorm nor the int8 calibration set.
    held_out = lfw_faces_csv(lfw_dir, tmp_path_factory.mktemp("heldout"), per_person=4)
    for art in (f32, i8):
        report = parity_check(art.path, ckpt, images=held_out, limit=40, progress=False)
        assert report.passed, report.table()
        assert report.metrics.faces == 40
    # The check is not trivially easy: faces really differ (random init with plain BN stats would give sims ~1).
    from toolkit.checkpoint import load_checkpoint
    from toolkit.data.faces import load_face_crops
    from toolkit.embedders import TorchEmbedder

    loaded = load_checkpoint(ckpt)
    faces = load_face_crops(held_out, loaded.meta.spec, limit=20, progress=False).images
    emb = TorchEmbedder.from_checkpoint(loaded).embed(faces)
    sims = (emb @ emb.T)[np.triu_indices(len(emb), 1)]
    assert np.median(sims) < 0.95 and sims.min() < 0.8
