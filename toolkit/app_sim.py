"""The app's face crops, for the two "app" rungs of the accuracy ladder.

- ``before``: what the app's own code does (see docs/deploy.md): the detector box, no margin, cut from the frame as
  the sensor delivered it while the box is in the upright frame (a phone held upright reports rotationDegrees 90),
  scaled with a bilinear filter. An estimate: MTCNN boxes stand in for ML Kit's, PIL's bilinear resize for
  Android's ``createScaledBitmap``.
- ``after``: the crops the deployed app computes: the Kotlin preprocessor ``ftk deploy`` generates, compiled with
  kotlinc and run on the JVM, fed the sensor-oriented frame, rotationDegrees 90 and the MTCNN landmarks/box. With
  ``app_dir`` (a checkout ftk deploy patched), the app's OWN activity code computes them: its patched crop function
  and input builder, compiled against ftk's Android stubs (:mod:`toolkit.deploy.app_runner`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from toolkit.errors import InputError
from toolkit.spec import ModelSpec

APP_BEFORE = "before"
APP_AFTER = "after"
SIMULATIONS = (APP_BEFORE, APP_AFTER)
# rotationDegrees of a phone held upright (back and most front sensors are mounted landscape).
PHONE_ROTATION = 90

Cropper = Callable[[Image.Image, Sequence[float], Sequence[Sequence[float]]], np.ndarray]

DESCRIPTIONS = {
    APP_BEFORE: "app before deploy (its own crop, simulated: box without margin from the sensor frame rotated 90 "
                "degrees against the box; MTCNN boxes stand in for ML Kit's)",
    APP_AFTER: "app after deploy (crops by the generated Kotlin preprocessor on the JVM, sensor frame rotated 90 "
               "degrees; MTCNN landmarks stand in for ML Kit's, whose NOSE_BASE sits below the nose tip the "
               "template expects, so a phone may score a little lower)",
}


APP_CODE_DESCRIPTION = ("app after deploy (crops by the patched app's OWN code, {entry}, compiled with kotlinc "
                        "against ftk's Android stubs and run on the JVM from the sensor frame rotated 90 degrees; "
                        "MTCNN landmarks stand in for ML Kit's, whose NOSE_BASE sits below the nose tip the template "
                        "expects, so a phone may score a little lower)")


def describe_crops(mode: str, app_dir: str | Path | None = None) -> str:
    """What made the crops of an app rung, in words (for the report's notes)."""
    if mode != APP_AFTER or app_dir is None:
        return DESCRIPTIONS[mode]
    from toolkit.deploy.app_runner import find_entry

    entry = find_entry(Path(app_dir))
    return APP_CODE_DESCRIPTION.format(entry=f"{entry.crop_function} + {entry.input_function} at {entry.source}")


def check_simulation(mode: str | None) -> None:
    if mode is not None and mode not in SIMULATIONS:
        raise InputError(f"--simulate-app must be one of {', '.join(SIMULATIONS)}, got {mode!r}")


def app_eval_dir(model_path: str | Path, mode: str, base: str | Path | None = None) -> Path:
    """``<model stem>.app-<mode>.eval`` in ``base``: the current folder by default (where ``ftk evaluate MODEL
    --simulate-app MODE`` writes its report); the pipeline passes the model's own folder."""
    return Path(Path.cwd() if base is None else base) / f"{Path(model_path).stem}.app-{mode}.eval"


def sensor_frame(upright: np.ndarray, rotation: int = PHONE_ROTATION) -> np.ndarray:
    """The frame as the sensor delivers it: rotating it clockwise by ``rotation`` gives ``upright``."""
    return np.ascontiguousarray(np.rot90(upright, k=rotation // 90))


def app_before_crop(image: Image.Image, box: Sequence[float], size: int, rotation: int = PHONE_ROTATION) -> np.ndarray:
    """The app's crop: the upright-frame box, clipped to the sensor frame, cut from the unrotated sensor image."""
    sensor = sensor_frame(np.asarray(image.convert("RGB")), rotation)
    height, width = sensor.shape[:2]
    left, top, right, bottom = (int(round(float(v))) for v in box)  # ML Kit boxes are integer Rects
    left, top, right, bottom = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    if right <= left or bottom <= top:  # the box missed the sensor frame altogether: the app would crash; grey
        return np.full((size, size, 3), 128, np.uint8)
    crop = Image.fromarray(sensor[top:bottom, left:right])
    return np.asarray(crop.resize((size, size), Image.BILINEAR), np.uint8)


def cropper_fingerprint(mode: str | None, app_dir: str | Path | None = None) -> str:
    """What the "after" crops depend on besides the spec: the generated core's template, or the app's sources."""
    if mode != APP_AFTER:
        return ""
    from toolkit.deploy.kotlin import template_fingerprint

    if app_dir is None:
        return template_fingerprint()
    from toolkit.deploy.app_runner import app_build_fingerprint

    return app_build_fingerprint(app_dir)


def as_pixels(tensor: np.ndarray) -> np.ndarray:
    """The app's model input as uint8: its floats are whole numbers 0..255, so uint8 holds them exactly."""
    return np.clip(np.rint(tensor), 0, 255).astype(np.uint8)


@contextlib.contextmanager
def app_cropper(spec: ModelSpec, mode: str, app_dir: str | Path | None = None) -> Iterator[Cropper]:
    """A crop function ``(image, box, landmarks) -> uint8 [S, S, 3]`` that does what the app does in ``mode``;
    with ``app_dir`` ("after" only) through that patched app's own code on the JVM."""
    check_simulation(mode)
    if app_dir is not None and mode != APP_AFTER:
        raise InputError("--app runs the app's own patched code: it goes with --simulate-app after")
    if mode == APP_BEFORE:
        yield lambda image, box, landmarks: app_before_crop(image, box, spec.input_size)
        return
    if app_dir is not None:
        yield from _app_code_cropper(spec, Path(app_dir))
        return
    from toolkit.deploy.kotlin import KotlinPreprocessor

    with KotlinPreprocessor(spec) as kotlin:
        def crop(image: Image.Image, box, landmarks) -> np.ndarray:
            sensor = sensor_frame(np.asarray(image.convert("RGB")))
            return as_pixels(kotlin.face(sensor, PHONE_ROTATION, box, landmarks))

        yield crop


def _app_code_cropper(spec: ModelSpec, app_dir: Path) -> Iterator[Cropper]:
    from toolkit.deploy.app_runner import AppPreprocessor

    with AppPreprocessor(app_dir, spec) as app:
        def crop(image: Image.Image, box, landmarks) -> np.ndarray:
            tensor = app.face(sensor_frame(np.asarray(image.convert("RGB"))), PHONE_ROTATION, box, landmarks)
            if tensor is None:  # the app skips a face without landmarks; the protocol must still score the pair
                return np.full((spec.input_size, spec.input_size, 3), 128, np.uint8)
            return as_pixels(tensor)

        yield crop
