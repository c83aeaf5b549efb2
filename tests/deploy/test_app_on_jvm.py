"""The real app's OWN code after ftk deploy, compiled with kotlinc against ftk's Android signature stubs and run on
the JVM: its patched ``cropAndResizeFace`` + ``convertBitmapToByteBuffer`` turn camera frames into exactly the model
input ``crop_face`` makes (the crop training, evaluation, calibration and parity use), in every sensor rotation and
mirrored; and its patched matching skips another model's records and accepts at the calibrated threshold."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from tests.deploy.conftest import real_app_source, shaped_spec
# The same 200 MTCNN-detected LFW faces and the same kotlinc check as the generated core's test (fixtures).
from tests.deploy.test_kotlin_preprocessor import (ROTATIONS, kotlin, lfw_detections, mirror_box,  # noqa: F401
                                                   mirror_points)
from toolkit.data.crop import crop_face
from toolkit.io import copy_writable


@pytest.fixture(scope="module")
def patched_apps(kotlin, shaped_exports, shared_dir, tmp_path_factory):
    """{backbone: a copy of the real app deployed with that backbone's contract (--app-code patch)}."""
    import os

    from toolkit.deploy import deploy

    source = real_app_source(shared_dir)
    os.environ.setdefault("FTK_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    apps = {}
    for like, export in shaped_exports.items():
        app = copy_writable(source, tmp_path_factory.mktemp(like) / "face-data-matching-app")
        deploy(export, app, variant="float32", threshold=MATCH_THRESHOLD)
        apps[like] = app
    return apps


# A threshold that is exactly a float32 score: the app must accept a score equal to it (ftk: score >= threshold).
MATCH_THRESHOLD = float(np.float32(0.6))


@pytest.mark.shared
@pytest.mark.parametrize("like", ["mobilefacenet", "inception_resnet_v1"])
def test_patched_app_crop_equals_crop_face_on_lfw(patched_apps, lfw_detections, like, capsys):
    from toolkit.deploy.app_runner import AppPreprocessor

    spec = shaped_spec(like)
    started = time.perf_counter()
    app = AppPreprocessor(patched_apps[like], spec)
    compiled = time.perf_counter() - started
    stats = {}
    with app:
        for mirrored in (False, True):
            for rotation in ROTATIONS:
                diffs = []
                for image, box, marks in lfw_detections:
                    upright = np.asarray(image)
                    if mirrored:  # a mirrored scene: ML Kit still names the subject's sides
                        width = upright.shape[1]
                        marks, box, upright = mirror_points(marks, width), mirror_box(box, width), upright[:, ::-1]
                    rect = [float(round(float(v))) for v in box]  # ML Kit boxes are integer Rects
                    expected = crop_face(Image.fromarray(np.ascontiguousarray(upright)), spec, rect,
                                         [tuple(map(float, p)) for p in marks])
                    frame = np.ascontiguousarray(np.rot90(upright, k=rotation // 90))
                    got = app.face(frame, rotation, rect, marks)
                    diffs.append(np.abs(got - expected.astype(np.float32)))
                d = np.stack(diffs)
                stats[(rotation, mirrored)] = (float(d.max()), float(d.mean()), float((d <= 1.0).mean()))
    seconds = time.perf_counter() - started - compiled
    with capsys.disabled():
        print(f"\nreal app's patched {app.entry.crop_function} ({app.entry.source}), {like} contract "
              f"({spec.crop}, {spec.input_size}), {len(lfw_detections)} LFW faces: compile {compiled:.1f} s, "
              f"JVM {seconds:.1f} s")
        for (rotation, mirrored), (worst, mean, within) in stats.items():
            print(f"  rotation {rotation:3d}{' mirrored' if mirrored else '         '}: max |diff| {worst:.3f}, "
                  f"mean {mean:.5f}, within 1.0: {within:.5%}")
    for key, (worst, mean, within) in stats.items():
        if spec.crop == "align":
            assert worst == 0.0, f"{key}: alignment differs from crop_face by up to {worst}"
        assert within >= 0.999 and mean < 0.05, f"{key}: {within:.4%} within 1.0, mean {mean}"


@pytest.mark.shared
def test_a_face_without_landmarks_is_skipped_not_guessed(patched_apps):
    from toolkit.deploy.app_runner import AppPreprocessor

    frame = np.full((120, 100, 3), 128, np.uint8)
    with AppPreprocessor(patched_apps["mobilefacenet"], shaped_spec("mobilefacenet")) as app:
        assert app.face(frame, 90, [10, 10, 60, 60], None) is None
    with AppPreprocessor(patched_apps["inception_resnet_v1"], shaped_spec("inception_resnet_v1")) as app:
        assert app.face(frame, 90, [10, 10, 60, 60], None).shape == (160, 160, 3)  # a box crop needs none


@pytest.mark.shared
def test_patched_matching_skips_other_models_and_accepts_at_the_threshold(patched_apps):
    """The app's own getMatchingKey over its SharedPreferences store, as patched: records of another model (or
    enrolled before ftk deploy) are never compared; a score equal to the calibrated threshold is a match."""
    from toolkit.deploy.app_runner import AppPreprocessor
    from toolkit.deploy.kotlin import model_id
    from toolkit.io import sha256_file

    app_dir = patched_apps["mobilefacenet"]
    mine = "ftk:" + model_id(sha256_file(next((app_dir / "app/src/main/assets").glob("*.tflite")))) + ":"
    dim = shaped_spec("mobilefacenet").embedding_dim
    alice = np.zeros(dim, np.float32)
    alice[0] = 1.0
    probe = np.zeros(dim, np.float32)
    probe[:2] = [3.0, 4.0]  # cosine with alice: 3f / (1f * 5f) = float32(0.6), exactly, in the app's arithmetic
    as_key = lambda e: "[" + ", ".join(repr(float(v)) for v in e) + "]"  # Kotlin's FloatArray.contentToString
    with AppPreprocessor(app_dir, shaped_spec("mobilefacenet")) as app:
        assert app.entry.match_function == "getMatchingKey" and app.entry.store_field == "sharedPreferences"
        assert app.match({mine + as_key(alice): "alice"}, alice) == mine + as_key(alice)
        assert app.match({mine + as_key(alice): "alice"}, probe) == mine + as_key(alice)  # == threshold: accepted
        below = probe.copy()
        below[:2] = [2.9, 4.0]  # cosine 0.587
        assert app.match({mine + as_key(alice): "alice"}, below) is None
        # The same embedding enrolled before the deploy (no prefix) or by another model: never a match.
        assert app.match({as_key(probe): "old", "ftk:000000000000:" + as_key(probe): "other model"}, probe) is None
        # A record of this model with another length (a corrupted store) is skipped, not a crash.
        assert app.match({mine + as_key(alice[:5]): "short"}, alice) is None
