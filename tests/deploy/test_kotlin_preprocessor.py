"""The Kotlin preprocessor ftk deploy adds to the app, compiled with the real kotlinc and run on the JVM.

The proof that the app computes what ftk measured: on real LFW faces with MTCNN landmarks, in every rotation the
camera can report and mirrored, the generated Kotlin turns the sensor-oriented frame into the same model input as
``crop_face`` (the crop that training, evaluation, calibration and parity use).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from toolkit.data.crop import crop_face
from toolkit.deploy.kotlin import (ADAPTER_FILE, CORE_FILE, KotlinPreprocessor, find_kotlin, generate_sources,
                                   model_id)
from toolkit.errors import DependencyError, InputError
from toolkit.models.registry import default_spec

N_FACES = 200
ROTATIONS = (0, 90, 180, 270)


@pytest.fixture(scope="module")
def kotlin():
    try:
        return find_kotlin()
    except DependencyError as exc:
        pytest.skip(f"{exc} (scripts/setup.sh installs Debian's kotlin package; it could not be installed here)")


def sensor_frame(upright: np.ndarray, rotation: int, mirrored: bool) -> np.ndarray:
    """The frame a camera delivers when rotating it clockwise by ``rotation`` (then mirroring) gives ``upright``."""
    frame = upright[:, ::-1] if mirrored else upright
    return np.ascontiguousarray(np.rot90(frame, k=rotation // 90))


def mirror_points(points: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the mirrored image, in template order again (the image-left eye first)."""
    mirrored = points.copy()
    mirrored[:, 0] = width - 1 - points[:, 0]  # pixel-centre coordinates: pixel i -> width - 1 - i
    return mirrored[[1, 0, 2, 4, 3]]


def mirror_box(box: np.ndarray, width: int) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([width - x2, y1, width - x1, y2], np.float32)  # edge coordinates: x -> width - x


@pytest.fixture(scope="module")
def lfw_detections(lfw_dir):
    """(upright RGB image, box, landmarks) for N_FACES LFW images spread over identities, MTCNN-detected."""
    from toolkit.data.detect import FaceDetector, list_images, pick_face
    from toolkit.data.faces import spread_sample

    paths = spread_sample(list_images(lfw_dir), N_FACES + 20, seed=3)
    faces = []
    for path, found in zip(paths, FaceDetector().detect_files(paths)):
        if isinstance(found, str):
            continue
        with Image.open(path) as im:
            image = im.convert("RGB")
        face = pick_face(found, image.size, "center")
        if face is not None:
            faces.append((image, np.float32(face.box), np.float32(face.landmarks)))
    assert len(faces) >= N_FACES, f"MTCNN found only {len(faces)} faces"
    return faces[:N_FACES]


@pytest.mark.shared
@pytest.mark.parametrize("backbone", ["mobilefacenet", "inception_resnet_v1"])
def test_kotlin_matches_crop_face_on_lfw_in_every_rotation(kotlin, lfw_detections, backbone, capsys):
    spec = default_spec(backbone)  # mobilefacenet: 5-point alignment at 112; inception_resnet_v1: box + 20 at 160
    started = time.perf_counter()
    stats = {}
    with KotlinPreprocessor(spec) as jvm:
        for mirrored in (False, True):
            for rotation in ROTATIONS:
                diffs = []
                for image, box, marks in lfw_detections:
                    upright = np.asarray(image)
                    width = upright.shape[1]
                    if mirrored:
                        marks, box = mirror_points(marks, width), mirror_box(box, width)
                        upright = upright[:, ::-1]
                    expected = crop_face(Image.fromarray(np.ascontiguousarray(upright)), spec,
                                         [float(v) for v in box], [tuple(map(float, p)) for p in marks])
                    frame = sensor_frame(upright, rotation, mirrored)
                    got = jvm.face(frame, rotation, box, marks, mirrored=mirrored)
                    assert got.shape == expected.shape
                    diffs.append(np.abs(got - expected.astype(np.float32)))
                d = np.stack(diffs)
                stats[(rotation, mirrored)] = (float(d.max()), float(d.mean()), float((d <= 1.0).mean()))
    seconds = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n{backbone} ({spec.crop}), {len(lfw_detections)} LFW faces, JVM {seconds:.1f} s:")
        for (rotation, mirrored), (worst, mean, within) in stats.items():
            print(f"  rotation {rotation:3d}{' mirrored' if mirrored else '         '}: max |diff| {worst:.3f}, "
                  f"mean {mean:.5f}, within 1.0: {within:.5%}")
    for key, (worst, mean, within) in stats.items():
        assert within >= 0.999, f"{key}: only {within:.4%} of values within 1.0 (max {worst}, mean {mean})"
        assert mean < 0.05, f"{key}: mean difference {mean}"


def test_kotlin_matches_crop_face_on_synthetic_frames(kotlin):
    """Without LFW: random frames of odd sizes, boxes reaching over the edges, tilted landmarks."""
    rng = np.random.default_rng(0)
    for backbone in ("tiny", "mobilefacenet"):
        spec = default_spec(backbone)
        with KotlinPreprocessor(spec) as jvm:
            for trial in range(12):
                h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
                upright = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                box = np.float32([rng.uniform(-5, w / 3), rng.uniform(-5, h / 3),
                                  rng.uniform(w / 2, w + 5), rng.uniform(h / 2, h + 5)])
                centre = np.array([w / 2, h / 2])
                angle = rng.uniform(-0.5, 0.5)
                rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
                template = np.array([[-9, -6], [9, -6], [0, 2], [-7, 10], [7, 10]], float) * rng.uniform(0.6, 1.4)
                marks = np.float32(template @ rot.T + centre)
                expected = crop_face(Image.fromarray(upright), spec, [float(v) for v in box],
                                     [tuple(map(float, p)) for p in marks]).astype(np.float32)
                for rotation in ROTATIONS:
                    got = jvm.face(sensor_frame(upright, rotation, False), rotation, box, marks)
                    assert np.abs(got - expected).max() <= 1.0, (backbone, trial, rotation)


def test_kotlin_refuses_bad_input_with_a_message(kotlin):
    spec = default_spec("tiny")
    frame = np.zeros((20, 30, 3), np.uint8)
    with KotlinPreprocessor(spec) as jvm:
        with pytest.raises(InputError, match="invalid face box"):
            jvm.box(frame, 0, [10, 10, 5, 15])
        with pytest.raises(InputError, match="outside the 30x20 frame"):
            jvm.box(frame, 0, [40, 5, 50, 15])
        # The process survives a refused request.
        assert jvm.box(frame, 90, [2, 2, 15, 25]).shape == (spec.input_size, spec.input_size, 3)


RECORDS_CHECK = """
package ftk.check

fun main(args: Array<String>) {
    val embedding = floatArrayOf(0.12f, -0.03f) + FloatArray(FtkFacePreprocessor.EMBEDDING_DIM - 2) { it * 0.01f }
    val key = FtkRecords.key(embedding)
    println("key " + key.substring(0, 24))
    println("roundtrip " + (FtkRecords.embeddingOf(key)!!.contentEquals(embedding)))
    println("legacy " + FtkRecords.embeddingOf(embedding.contentToString()))
    println("other " + FtkRecords.embeddingOf("ftk:000000000000:" + embedding.contentToString()))
    println("short " + FtkRecords.embeddingOf(key.substringBefore(", ") + "]"))
    val left = floatArrayOf(70f, 50f); val right = floatArrayOf(40f, 51f); val nose = floatArrayOf(55f, 70f)
    val mouthLeft = floatArrayOf(68f, 90f); val mouthRight = floatArrayOf(42f, 91f)
    println("order " + FtkFacePreprocessor.templateOrder(left, right, nose, mouthLeft, mouthRight).contentToString())
    println("mirrored " + FtkFacePreprocessor.templateOrder(left, right, nose, mouthLeft, mouthRight, true).contentToString())
}
"""


def test_records_and_landmark_order_on_the_jvm(kotlin, tmp_path):
    """Records carry the model id; other models' and pre-ftk records are not parsed; ML Kit's subject-left
    landmarks go to the template's image-right slots."""
    spec = default_spec("mobilefacenet")
    sha = "ab12cd34ef56" + "0" * 52
    (tmp_path / CORE_FILE).write_text(generate_sources(spec, "ftk.check", "m.tflite", sha)[CORE_FILE])
    (tmp_path / "Check.kt").write_text(RECORDS_CHECK)
    subprocess.run([kotlin.kotlinc, CORE_FILE, "Check.kt", "-include-runtime", "-d", "check.jar"], cwd=tmp_path,
                   check=True, capture_output=True, timeout=600)
    out = subprocess.run([kotlin.java, "-cp", "check.jar", "ftk.check.CheckKt"], cwd=tmp_path, check=True,
                         capture_output=True, text=True, timeout=60).stdout.splitlines()
    lines = dict(line.split(" ", 1) for line in out)
    assert lines["key"] == f"ftk:{model_id(sha)}:[0.12, "
    assert lines["roundtrip"] == "true"
    assert lines["legacy"] == "null" and lines["other"] == "null" and lines["short"] == "null"
    # Unmirrored: the subject's right eye (at x 40, the image's left) comes first.
    assert lines["order"] == "[40.0, 51.0, 70.0, 50.0, 55.0, 70.0, 42.0, 91.0, 68.0, 90.0]"
    assert lines["mirrored"] == "[70.0, 50.0, 40.0, 51.0, 55.0, 70.0, 68.0, 90.0, 42.0, 91.0]"


def test_generated_core_is_pure_kotlin_and_carries_the_spec():
    spec = default_spec("mobilefacenet")
    sources = generate_sources(spec, "com.example.app", "ftk_mobilefacenet_int8.tflite", "f" * 64)
    core, adapter = sources[CORE_FILE], sources[ADAPTER_FILE]
    imports = re.findall(r"^import\s+([\w.]+)", core, re.M)
    assert not [i for i in imports if i.startswith(("android.", "androidx.", "com.google."))]
    assert "package com.example.app\n" in core and "package com.example.app\n" in adapter
    assert f"const val INPUT_SIZE = {spec.input_size}\n" in core
    assert f"const val EMBEDDING_DIM = {spec.embedding_dim}\n" in core
    assert 'const val CROP = "align"' in core and f'const val MODEL_ID = "{"f" * 12}"' in core
    assert "FaceLandmark.LEFT_EYE" in adapter and "com.google.mlkit.vision.face.Face" in adapter
    with pytest.raises(InputError, match="raw 0..255"):
        generate_sources(spec.replace(value_range=(-1.0, 1.0)), "p", "m.tflite", "0" * 64)
