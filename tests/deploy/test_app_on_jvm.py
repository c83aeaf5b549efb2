"""The real app's OWN code after ftk deploy, compiled with kotlinc against ftk's Android signature stubs and run on
the JVM: its patched ``cropAndResizeFace`` + ``convertBitmapToByteBuffer`` turn camera frames into exactly the model
input ``crop_face`` makes (the crop training, evaluation, calibration and parity use), in every sensor rotation and
mirrored; and its patched matching skips another model's records and accepts at the calibrated threshold."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from tests.deploy.conftest import shaped_spec
# The same 200 MTCNN-detected LFW faces and the same kotlinc check as the generated core's test (fixtures).
from tests.deploy.test_kotlin_preprocessor import (ROTATIONS, kotlin, lfw_detections, mirror_box,  # noqa: F401
                                                   mirror_points)
from toolkit.data.crop import crop_face


@pytest.fixture(scope="module")
def patched_apps(kotlin, shaped_exports, shared_dir, tmp_path_factory):
    """{backbone: a copy of the real app deployed with that backbone's contract (--app-code patch)}."""
    import os
    import shutil

    from toolkit.deploy import deploy

    source = shared_dir / "apps" / "face-data-matching-app"
    if not (source / "app").is_dir():
        pytest.skip(f"the real app is not at {source}")
    os.environ.setdefault("FTK_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    apps = {}
    for like, export in shaped_exports.items():
        app = shutil.copytree(source, tmp_path_factory.mktemp(like) / "face-data-matching-app")
        deploy(export, app, variant="float32", threshold=0.5)
        apps[like] = app
    return apps


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
