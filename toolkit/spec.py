"""The model contract: one preprocessing spec, defined once, carried by every checkpoint and exported artifact.

A :class:`ModelSpec` says what a face embedder takes and gives: input size, layout and value range of the
*app-facing* input (NHWC float32 raw 0..255 RGB pixels, as the Android app feeds it), the channel order the backbone
sees, the normalisation applied inside the graph (``(x - mean) / std`` in pixel units), the embedding dim, whether
the output is L2-normalised, and how faces are cropped (detector box + margin, or five-point alignment).

Every field is acted on or refused, never ignored:

- ``channel_order``: ``RGB`` or ``BGR``, the order the *backbone* expects. Crops and the app's input are RGB; a BGR
  backbone gets a channel flip in the exported graph and in host preprocessing (:meth:`ModelSpec.normalize_nhwc`).
  ``mean``/``std`` are listed in the backbone's channel order (they apply after the flip).
- ``input_layout`` / ``input_dtype``: only ``NHWC`` / ``float32`` (what the app feeds); anything else is refused.
- ``value_range``: ftk and the app feed raw 0..255 pixels; consumers that feed the model call
  :meth:`ModelSpec.require_raw_pixels` and refuse another range with a clear error.
- ``l2_normalized``: whether the model's own output is unit length. The exported graph ends with an L2
  normalisation only when it is true; ftk's embedders normalise on the host when it is false, so ``embed()`` is
  always unit length.

Backbone defaults live in :mod:`toolkit.models.registry`; training, export, parity, evaluate, bench and deploy
read the spec from the checkpoint or the export manifest and never re-type 160, 512 or 127.5.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.constants import MAX_EMBEDDING_DIM, MAX_INPUT_SIZE, MIN_INPUT_SIZE
from toolkit.errors import InputError
from toolkit.wording import did_you_mean

CROP_METHODS = ("box", "align")
BACKBONE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}")
CHANNEL_ORDERS = ("RGB", "BGR")
INPUT_LAYOUTS = ("NHWC",)
INPUT_DTYPES = ("float32",)
RAW_PIXEL_RANGE = (0.0, 255.0)


@dataclass(frozen=True)
class ModelSpec:
    backbone: str
    input_size: int
    embedding_dim: int
    # Normalisation in pixel units (0..255), per channel in ``channel_order``: x_norm = (x - mean) / std.
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # The channel order the backbone expects; the app-facing input is always RGB (BGR: flipped in the graph).
    channel_order: str = "RGB"
    # What the exported model takes: [1, H, W, 3] float32 with raw 0..255 values.
    input_layout: str = "NHWC"
    input_dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 255.0)
    l2_normalized: bool = True
    crop: str = "box"
    # Margin (pixels at input_size) added around the detector box, facenet-pytorch's MTCNN convention.
    box_margin: int = 0

    def __post_init__(self) -> None:
        # A spec read from a manifest or a .tflite is not trusted: its values end up in generated Kotlin and code.
        self._check_types()
        if not BACKBONE_NAME.fullmatch(self.backbone):
            raise InputError(f"backbone must be a name of letters, digits, '_', '.', '-' or ':', "
                             f"got {short_repr(self.backbone)}")
        if not MIN_INPUT_SIZE <= self.input_size <= MAX_INPUT_SIZE:
            raise InputError(f"input size is {short_repr(self.input_size)} px, outside a face model's "
                             f"{MIN_INPUT_SIZE}..{MAX_INPUT_SIZE}")
        if not 1 <= self.embedding_dim <= MAX_EMBEDDING_DIM:
            raise InputError(f"embedding_dim must be in 1..{MAX_EMBEDDING_DIM}, got {short_repr(self.embedding_dim)}")
        if not 0 <= self.box_margin < self.input_size:
            raise InputError(f"box_margin must be in [0, input_size), got {short_repr(self.box_margin)}")
        if self.crop not in CROP_METHODS:
            raise InputError(f"crop must be one of {CROP_METHODS}, got {short_repr(self.crop)}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise InputError(f"mean and std need 3 values each with std > 0, got mean={short_repr(self.mean)} "
                             f"std={short_repr(self.std)}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise InputError(f"channel_order must be one of {CHANNEL_ORDERS}, got {short_repr(self.channel_order)}")
        if self.input_layout not in INPUT_LAYOUTS:
            raise InputError(f"input_layout {short_repr(self.input_layout)} is not supported: ftk exports and "
                             "feeds NHWC [1, H, W, 3] like the app")
        if self.input_dtype not in INPUT_DTYPES:
            raise InputError(f"input_dtype {short_repr(self.input_dtype)} is not supported: ftk exports and feeds "
                             "float32 input like the app")
        if len(self.value_range) != 2 or not self.value_range[0] < self.value_range[1]:
            raise InputError(f"value_range must be [low, high] with low < high, got {short_repr(self.value_range)}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))

    def _check_types(self) -> None:
        """Every field has its type (a crafted contract's list, string or huge number is refused, not crashed on)."""
        for name in ("input_size", "embedding_dim", "box_margin"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"{name} must be an integer, got {short_repr(value)}")
        for name in ("backbone", "crop", "channel_order", "input_layout", "input_dtype"):
            if not isinstance(getattr(self, name), str):
                raise InputError(f"{name} must be a string, got {short_repr(getattr(self, name))}")
        for name in ("mean", "std", "value_range"):
            values = getattr(self, name)
            if not isinstance(values, (tuple, list)) or not all(_is_finite_number(v) for v in values):
                raise InputError(f"{name} must be a list of finite numbers, got {short_repr(values)}")
        if not isinstance(self.l2_normalized, bool):
            raise InputError(f"l2_normalized must be true or false, got {short_repr(self.l2_normalized)}")

    # --- serialisation -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["value_range"] = list(self.value_range)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        if not isinstance(data, dict):
            raise InputError(f"model spec must be a mapping, got {type(data).__name__}")
        reject_unknown_keys(data, {f.name for f in dataclasses.fields(cls)}, where="model spec")
        values = dict(data)
        for key in ("mean", "std", "value_range"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except TypeError as exc:  # missing required field
            raise InputError(f"model spec is incomplete: {exc}") from None

    def replace(self, **changes: Any) -> "ModelSpec":
        return dataclasses.replace(self, **changes)

    # --- preprocessing ------------------------------------------------------------------------------------------
    @property
    def channel_permutation(self) -> tuple[int, int, int]:
        """Index of the RGB input channel each backbone channel reads: (0, 1, 2) for RGB, (2, 1, 0) for BGR."""
        return (2, 1, 0) if self.channel_order == "BGR" else (0, 1, 2)

    def require_raw_pixels(self, what: str) -> None:
        """Refuse a spec whose model takes another value range than the raw 0..255 pixels ftk (and the app) feed."""
        if tuple(self.value_range) != RAW_PIXEL_RANGE:
            raise InputError(f"{what}: the spec says the model takes input values in {list(self.value_range)}, "
                             "but ftk feeds raw 0..255 pixels as the app does",
                             hint="export with the normalisation in the graph (value_range [0, 255])")

    def normalize_nhwc(self, faces: np.ndarray) -> np.ndarray:
        """uint8/float NHWC 0..255 RGB -> float32 NHWC normalised in the backbone's channel order (what the graph
        does right after its input)."""
        faces = self.check_faces(faces)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        x = faces.astype(np.float32)
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        return (x - mean) / std

    def to_model_input(self, faces: np.ndarray) -> np.ndarray:
        """uint8 NHWC 0..255 -> float32 NCHW normalised, the layout the PyTorch backbones take."""
        return np.ascontiguousarray(self.normalize_nhwc(faces).transpose(0, 3, 1, 2))

    def check_faces(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        if faces.ndim == 3:
            faces = faces[None]
        expected = (self.input_size, self.input_size, 3)
        if faces.ndim != 4 or faces.shape[1:] != expected:
            raise InputError(
                f"face crops must be N x {expected[0]} x {expected[1]} x 3 (NHWC, RGB, 0..255) for "
                f"{self.backbone}, got shape {tuple(faces.shape)}"
            )
        return faces


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def short_repr(value: Any, limit: int = 60) -> str:
    """repr() of a value from a file, cut to ``limit`` characters without building the whole text first."""
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = shortener.maxlong = limit
    try:
        text = shortener.repr(value)
    except (ValueError, RecursionError):  # an int past Python's 4300-digit conversion limit, a self-nesting list
        text = f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reject_unknown_keys(data: dict[str, Any], known: set[str] | list[str], where: str) -> None:
    """Raise an error naming each unknown key and the closest known one."""
    known = sorted(known)
    problems = []
    for key in data:
        if key not in known:
            hint = did_you_mean(str(key)[:100], known, otherwise=f"known keys: {', '.join(known)}")
            problems.append(f"unknown key {short_repr(key)} in {where} ({hint})")
    if problems:
        more = f"; and {len(problems) - 5} more unknown keys" if len(problems) > 5 else ""
        raise InputError("; ".join(problems[:5]) + more)


def parse_normalization(text: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Parse ``MEAN,STD`` (pixel units, e.g. ``127.5,128``) or ``m1,m2,m3,s1,s2,s3``."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        values = []
    if len(values) == 2:
        return (values[0],) * 3, (values[1],) * 3  # type: ignore[return-value]
    if len(values) == 6:
        return tuple(values[:3]), tuple(values[3:])  # type: ignore[return-value]
    raise InputError(
        f"--normalization must be MEAN,STD or three means and three stds in pixel units (0..255), got {text!r}",
        hint="e.g. 127.5,128 for facenet, or 123.675,116.28,103.53,58.395,57.12,57.375 for ImageNet",
    )
