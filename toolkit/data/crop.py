"""Turn an image plus a detection into the model's input crop, as the spec says: box + margin, or 5-point alignment."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from toolkit.errors import InputError
from toolkit.spec import ModelSpec

# The standard 5-point template for 112x112 face recognition crops (ArcFace/InsightFace):
# left eye, right eye, nose tip, left mouth corner, right mouth corner (MTCNN's landmark order).
ALIGN_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def crop_box(image: Image.Image, box: Sequence[float], size: int, margin: int = 0) -> np.ndarray:
    """facenet-pytorch's ``extract_face``: enlarge the box by ``margin`` pixels (at output scale), crop, resize."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        raise InputError(f"invalid face box {list(box)}: need x2 > x1 and y2 > y1")
    mx = margin * (x2 - x1) / (size - margin)
    my = margin * (y2 - y1) / (size - margin)
    w, h = image.size
    left = int(max(x1 - mx / 2, 0))
    top = int(max(y1 - my / 2, 0))
    right = int(min(x2 + mx / 2, w))
    bottom = int(min(y2 + my / 2, h))
    face = image.convert("RGB").crop((left, top, right, bottom)).resize((size, size), Image.BILINEAR)
    return np.asarray(face, dtype=np.uint8)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst (Umeyama 1991). 2x3."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var_src = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / var_src
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = dst_mean - scale * rot @ src_mean
    return matrix


def align_face(image: Image.Image, landmarks: Sequence[Sequence[float]], size: int) -> np.ndarray:
    """Warp the face so its 5 landmarks land on the standard template (scaled from 112 to ``size``)."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise InputError("alignment needs 5 finite (x, y) landmarks: eyes, nose, mouth corners")
    template = ALIGN_TEMPLATE_112 * (size / 112.0)
    forward = similarity_transform(points, template)
    # PIL wants the inverse map: output pixel -> input pixel.
    full = np.vstack([forward, [0, 0, 1]])
    inverse = np.linalg.inv(full)[:2]
    # Landmarks and template use pixel-centre coordinates (pixel i at i), PIL samples at i + 0.5: shift in and out,
    # or the face lands up to ~1 px off the template.
    inverse[:, 2] += 0.5 - inverse[:, :2] @ np.array([0.5, 0.5])
    warped = image.convert("RGB").transform(
        (size, size), Image.AFFINE, data=tuple(inverse.ravel()), resample=Image.BILINEAR
    )
    return np.asarray(warped, dtype=np.uint8)


def crop_face(
    image: Image.Image,
    spec: ModelSpec,
    box: Sequence[float] | None = None,
    landmarks: Sequence[Sequence[float]] | None = None,
) -> np.ndarray:
    """The one crop function: what the spec says, for training, evaluation, calibration and parity alike."""
    if spec.crop == "align":
        if landmarks is None:
            raise InputError("this model's spec crops by 5-point alignment but no landmarks were given")
        return align_face(image, landmarks, spec.input_size)
    if box is None:
        raise InputError("a face box is required to crop")
    return crop_box(image, box, spec.input_size, spec.box_margin)


def center_crop(image: Image.Image, size: int, fraction: float = 1.0) -> np.ndarray:
    """Resize the central ``fraction`` of the image to ``size`` (for already-cropped face images)."""
    w, h = image.size
    side = min(w, h) * fraction
    left, top = (w - side) / 2, (h - side) / 2
    face = image.convert("RGB").crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return np.asarray(face, dtype=np.uint8)
