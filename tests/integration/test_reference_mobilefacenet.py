"""The MobileFaceNet golden set over ../shared: detections, crop hashes and embeddings of 32 LFW faces.

Only hashes, detections and embeddings are committed (reference_embeddings/shared/); the images and the published
weights are read from ../shared. The set catches drift in cropping/alignment, normalisation and the model code.
"""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.reference import MOBILEFACENET_LFW, verify_shared_face_set

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def shared(shared_dir, lfw_dir, mobilefacenet_dir):
    return shared_dir


def test_current_code_reproduces_the_golden_set(shared):
    result = verify_shared_face_set(MOBILEFACENET_LFW, shared)
    assert result.faces == 32 and result.crops_changed == 0
    assert result.max_embedding_diff <= 1e-4 and result.max_distance_diff <= 1e-4 and result.passed


def test_drift_in_alignment_normalisation_or_crop_is_caught(shared, monkeypatch):
    from toolkit.data import crop
    from toolkit.models.registry import default_spec

    spec = default_spec("mobilefacenet")
    shifted_mean = verify_shared_face_set(MOBILEFACENET_LFW, shared, spec=spec.replace(
        mean=tuple(m + 2.0 for m in spec.mean)))
    assert shifted_mean.crops_changed == 0 and not shifted_mean.passed and shifted_mean.max_embedding_diff > 1e-3
    box = verify_shared_face_set(MOBILEFACENET_LFW, shared, spec=spec.replace(crop="box", box_margin=32))
    assert box.crops_changed == 32 and not box.passed
    monkeypatch.setattr(crop, "ALIGN_TEMPLATE_112", crop.ALIGN_TEMPLATE_112 + np.array([0.5, 0.0]))
    template = verify_shared_face_set(MOBILEFACENET_LFW, shared)
    assert template.crops_changed >= 30 and not template.passed
