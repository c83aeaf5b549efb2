"""The app's OWN activity code, patched by ftk deploy, run on the JVM: what the phone computes from a camera frame.

``AppPreprocessor(app_dir, spec)`` compiles every Kotlin source of the app checkout (with ftk's generated files)
against ftk's Android signature stubs (:mod:`toolkit.deploy.app_jvm`), instantiates the activity that matches
faces, and calls its crop function (``ImageProxy, Face -> Bitmap?``) and its input builder (``Bitmap -> ByteBuffer``)
through ``FtkAppHarness.kt`` on sensor-oriented frames with ML Kit-style boxes and landmarks. ``ftk evaluate
--simulate-app after --app APP`` and the deploy tests measure with it.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.deploy.android import find_app
from toolkit.deploy.app_code import file_package, survey
from toolkit.deploy.app_jvm import app_fingerprint, compile_app, java_command
from toolkit.deploy.kotlin import TEMPLATES, JvmProcess, to_argb
from toolkit.deploy.kotlin_source import ancestor
from toolkit.errors import DependencyError, InputError
from toolkit.spec import ModelSpec

log = logging.getLogger(__name__)

HARNESS_FILE = "FtkAppHarness.kt"
HARNESS_MAIN = "ftk.jvm.FtkAppHarnessKt"
# ML Kit FaceLandmark types, and which of the template-ordered points (image-left eye, image-right eye, nose,
# image-left mouth corner, image-right mouth corner) each is in an unmirrored frame: ML Kit names the subject's side.
MLKIT_LANDMARKS = ((4, 1), (10, 0), (6, 2), (5, 4), (11, 3))  # LEFT_EYE, RIGHT_EYE, NOSE_BASE, MOUTH_LEFT, _RIGHT
STATUS_OK, STATUS_SKIPPED, STATUS_ERROR = 0, 1, 2


@dataclass(frozen=True)
class AppEntry:
    """The activity and the two functions the harness calls."""

    activity_class: str  # fully qualified
    crop_function: str
    input_function: str
    source: str  # file:line of the crop function
    match_function: str | None = None  # the function holding the threshold: FloatArray -> String? (the key)
    store_field: str | None = None  # its SharedPreferences property


def find_entry(app_dir: Path) -> AppEntry:
    """The patched crop function of the activity that matches faces (else the first), and its input builder."""
    app = find_app(app_dir)
    found = survey(app)
    crops = [c for c in found.crops if c.patched]
    if not crops:
        raise InputError(f"{app_dir} does not crop faces with ftk's preprocessor: run ftk deploy (--app-code patch) "
                         "on it first")
    matching = {t.file.path for t in app.thresholds}
    crop = next((c for c in crops if c.file.path in matching), crops[0])
    builders = [fun for file, fun, _ in found.buffers if file.path == crop.file.path]
    if not builders:
        raise InputError(f"{crop.file.rel}: no function that turns the crop into the interpreter input")
    cls = ancestor(crop.node, "class_declaration")
    package = file_package(crop.file) or ""
    name = crop.file.name_of(cls) if cls is not None else None
    if name is None:
        raise InputError(f"{crop.file.where(crop.node)}: the crop function is not in a class ftk can instantiate")
    match_fn = next((ancestor(t.file.root.descendant_for_byte_range(t.start, t.end), "function_declaration")
                     for t in app.thresholds if t.file.path == crop.file.path), None)
    store = next((crop.file.name_of(p) for p in crop.file.nodes("property_declaration", under=cls)
                  if crop.file.text(p).replace(" ", "").endswith(":SharedPreferences")), None)
    return AppEntry(f"{package}.{name}" if package else name, crop.name, crop.file.name_of(builders[0]),
                    crop.file.where(crop.node), crop.file.name_of(match_fn) if match_fn is not None else None, store)


def _harness() -> dict[str, str]:
    return {HARNESS_FILE: (TEMPLATES / HARNESS_FILE).read_text(encoding="utf-8")}


def app_build_fingerprint(app_dir: str | Path) -> str:
    """What the app's crops depend on: its sources (patched), layouts, Gradle scripts, ftk's stubs and harness."""
    return app_fingerprint(Path(app_dir), _harness())


def mlkit_landmarks(points) -> list[tuple[int, float, float]]:
    """Template-ordered 5 points (image-left eye first) as ML Kit reports them on an unmirrored frame."""
    points = np.asarray(points, np.float32).reshape(5, 2)
    return [(kind, float(points[i, 0]), float(points[i, 1])) for kind, i in MLKIT_LANDMARKS]


class AppPreprocessor(JvmProcess):
    """The app's own crop + input builder in one JVM process; use as a context manager."""

    def __init__(self, app_dir: str | Path, spec: ModelSpec):
        self.app_dir, self.spec = Path(app_dir), spec
        self.entry = find_entry(self.app_dir)
        self.build = compile_app(self.app_dir, extra_kotlin=_harness())

    def argv(self) -> list[str]:
        entry = self.entry
        matching = [entry.match_function, entry.store_field] if entry.match_function and entry.store_field else []
        return java_command(self.build, HARNESS_MAIN, [entry.activity_class, entry.crop_function,
                                                       entry.input_function, *matching])

    def match(self, records: dict[str, str], embedding) -> str | None:
        """The key the app's own matching function returns for ``embedding`` over ``records`` (key -> value)."""
        if not (self.entry.match_function and self.entry.store_field):
            raise InputError(f"{self.entry.activity_class} has no matching function with a SharedPreferences store")
        payload = struct.pack(">ii", 3, len(records))
        for key, value in records.items():
            payload += _utf(key) + _utf(value)
        values = np.asarray(embedding, np.float32)
        payload += struct.pack(">i", values.size) + values.astype(">f4").tobytes()
        try:
            self._send(payload)
            status = struct.unpack(">i", self._read(4))[0]
            if status == STATUS_OK:
                found = struct.unpack(">i", self._read(4))[0]
                return self._read(struct.unpack(">H", self._read(2))[0]).decode() if found else None
            message = self._read(struct.unpack(">H", self._read(2))[0]).decode(errors="replace")
        except (BrokenPipeError, EOFError) as exc:
            raise self._stopped(exc, "the app's code on the JVM") from None
        raise DependencyError(f"the app's {self.entry.match_function} failed on the JVM: {message}")

    def face(self, sensor_rgb: np.ndarray, rotation: int, box, landmarks) -> np.ndarray | None:
        """The model input the app computes (float32 [S, S, 3]), or None when the app skips the frame.

        ``box`` (left, top, right, bottom) and ``landmarks`` (5 template-ordered points, or None: ML Kit found none)
        are in the upright frame, as ML Kit reports them; the box is rounded to the integer Rect ML Kit returns.
        """
        height, width = sensor_rgb.shape[:2]
        rect = [int(round(float(v))) for v in box]
        points = mlkit_landmarks(landmarks) if landmarks is not None else []
        payload = struct.pack(">8i", 0, width, height, rotation, *rect) + struct.pack(">i", len(points))
        payload += b"".join(struct.pack(">iff", *p) for p in points)
        payload += to_argb(sensor_rgb).astype(">u4").tobytes()
        try:
            self._send(payload)
            status = struct.unpack(">i", self._read(4))[0]
            if status == STATUS_OK:
                count = struct.unpack(">i", self._read(4))[0]
                values = np.frombuffer(self._read(4 * count), ">f4").astype(np.float32)
            else:
                message = self._read(struct.unpack(">H", self._read(2))[0]).decode(errors="replace")
        except (BrokenPipeError, EOFError) as exc:
            raise self._stopped(exc, "the app's code on the JVM") from None
        if status == STATUS_SKIPPED:
            return None
        if status != STATUS_OK:
            raise DependencyError(f"the app's {self.entry.crop_function} failed on the JVM: {message}")
        size = self.spec.input_size
        if values.size != size * size * 3:
            raise InputError(f"the app's {self.entry.input_function} built {values.size} floats; the model takes "
                             f"{size}x{size}x3 = {size * size * 3} (is inputSize {size} in {self.entry.source}?)")
        return values.reshape(size, size, 3)


def _utf(text: str) -> bytes:
    """Java's modified UTF-8 as DataInputStream.readUTF reads it (plain ASCII/BMP text: the same as UTF-8)."""
    data = text.encode("utf-8")
    return struct.pack(">H", len(data)) + data
