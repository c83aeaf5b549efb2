"""Five-point alignment: the similarity fit, the image warp (pixel conventions included) and a real re-detection."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from toolkit.data.crop import ALIGN_TEMPLATE_112, align_face, crop_face, similarity_transform
from toolkit.errors import InputError
from toolkit.models.registry import default_spec


def _similarity(angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([scale * rot, np.array(shift, dtype=float)[:, None]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _blob_image(points: np.ndarray, width: int, height: int, sigma: float) -> Image.Image:
    """Gaussian dots centred at ``points`` (pixel i's centre is at coordinate i, as MTCNN reports landmarks)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    img = np.zeros((height, width))
    for x, y in points:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return Image.fromarray((255 * np.clip(img, 0, 1)).astype(np.uint8)).convert("RGB")


def _blob_centroids(crop: np.ndarray, around: np.ndarray, radius: int = 6) -> np.ndarray:
    gray = crop[..., 0].astype(float)
    found = []
    for x, y in around:
        x0, y0 = int(round(x)) - radius, int(round(y)) - radius
        window = gray[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1]
        yy, xx = np.mgrid[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1]
        found.append(((window * xx).sum() / window.sum(), (window * yy).sum() / window.sum()))
    return np.array(found)


@pytest.mark.parametrize("angle,scale,shift", [(0.0, 1.0, (0, 0)), (0.4, 2.3, (17.5, -4.0)), (-1.2, 0.45, (80, 60))])
def test_similarity_transform_recovers_a_known_map(angle, scale, shift):
    known = _similarity(angle, scale, shift)
    landmarks = _apply(known, ALIGN_TEMPLATE_112)
    fitted = similarity_transform(landmarks, ALIGN_TEMPLATE_112)
    np.testing.assert_allclose(_apply(fitted, landmarks), ALIGN_TEMPLATE_112, atol=1e-9)
    inverse = np.linalg.inv(np.vstack([known, [0, 0, 1]]))[:2]
    np.testing.assert_allclose(fitted, inverse, atol=1e-9)


def test_similarity_transform_never_mirrors():
    mirrored = ALIGN_TEMPLATE_112 * np.array([-1.0, 1.0])  # a left-right flipped face
    fitted = similarity_transform(mirrored, ALIGN_TEMPLATE_112)
    assert np.linalg.det(fitted[:, :2]) > 0  # rotation + scale only, no reflection


@pytest.mark.parametrize("size", [112, 160])
@pytest.mark.parametrize("angle,scale", [(0.3, 0.5), (0.0, 1.0), (-0.25, 2.0), (0.5, 3.0)])
def test_aligned_landmarks_land_on_the_scaled_template(size, angle, scale):
    # Dots at the template moved by a known similarity; after alignment they must sit on the template (sub-pixel,
    # which also catches a half-pixel convention mix-up between the landmarks and PIL's sampling grid).
    landmarks = _apply(_similarity(angle, scale, (40.3, 25.7)), ALIGN_TEMPLATE_112)
    width, height = (int(v) + 60 for v in landmarks.max(0))
    image = _blob_image(landmarks, width, height, sigma=1.5 * scale)
    crop = align_face(image, landmarks, size)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    template = ALIGN_TEMPLATE_112 * size / 112
    found = _blob_centroids(crop, template)
    assert np.abs(found - template).max() < 0.15, found - template


def test_crop_face_dispatches_on_the_spec():
    image = Image.new("RGB", (200, 200), (90, 120, 150))
    landmarks = _apply(_similarity(0.1, 1.5, (10, 20)), ALIGN_TEMPLATE_112)
    aligned_spec = default_spec("mobilefacenet")
    assert aligned_spec.crop == "align"
    assert crop_face(image, aligned_spec, box=(10, 10, 150, 180), landmarks=landmarks).shape == (112, 112, 3)
    with pytest.raises(InputError, match="landmarks"):
        crop_face(image, aligned_spec, box=(10, 10, 150, 180))
    box_spec = aligned_spec.replace(crop="box")
    assert crop_face(image, box_spec, box=(10, 10, 150, 180)).shape == (112, 112, 3)
    with pytest.raises(InputError, match="box"):
        crop_face(image, box_spec, landmarks=landmarks)


@pytest.mark.parametrize("bad", [np.zeros((4, 2)), np.full((5, 2), np.nan)])
def test_align_face_rejects_bad_landmarks(bad):
    with pytest.raises(InputError, match="5 finite"):
        align_face(Image.new("RGB", (64, 64)), bad, 112)


def test_aligned_lfw_faces_redetect_on_the_template(lfw_dir):
    """Real MTCNN: detect, align to 112, detect again; the eyes must come back where the warp put them."""
    from toolkit.data.detect import FaceDetector, pick_face

    people = ["Colin_Powell", "George_W_Bush", "Serena_Williams", "Tony_Blair", "Gerhard_Schroeder", "Ariel_Sharon"]
    paths = [p for name in people for p in sorted((lfw_dir / name).glob("*.jpg"))[:2]]
    if len(paths) < 8:
        pytest.skip("too few LFW images found")
    detector = FaceDetector(use_cache=False)
    crops, expected = [], []
    for path, dets in zip(paths, detector.detect_files(paths)):
        with Image.open(path) as im:
            face = pick_face(dets, im.size, "center")
            assert face is not None, f"MTCNN found no face in {path}"
            crops.append(Image.fromarray(align_face(im, face.landmarks, 112)))
        fit = similarity_transform(np.array(face.landmarks), ALIGN_TEMPLATE_112)
        expected.append(_apply(fit, np.array(face.landmarks))[:2])  # the eyes after the warp
    eye_errors = []
    for crop, target in zip(crops, expected):
        again = pick_face(detector.detect_images([crop])[0], crop.size, "center")
        assert again is not None, "MTCNN found no face in an aligned crop"
        eye_errors.append(np.array(again.landmarks)[:2] - target)
    eye_errors = np.array(eye_errors)  # [faces, 2 eyes, xy]
    # MTCNN's landmark noise is 1-3 px per point, so judge the systematic offset (mean) and the typical error.
    assert np.linalg.norm(eye_errors.mean((0, 1))) < 2.0, eye_errors.mean((0, 1))
    assert np.median(np.linalg.norm(eye_errors, axis=2)) < 3.0
    # And the eyes sit near the template itself (the fit residual of real faces adds a little).
    eyes = np.array(expected) + eye_errors
    assert np.abs(eyes.mean(0) - ALIGN_TEMPLATE_112[:2]).max() < 3.0
