"""The model's preprocessing as Kotlin, generated from its ModelSpec, and a JVM runner that executes that code.

``generate_sources`` writes the two files ``ftk deploy`` adds to the app: ``FtkFacePreprocessor.kt`` (pure Kotlin:
rotation-aware five-point alignment or box crop, the exact sampling ``toolkit.data.crop.crop_face`` uses) and
``FtkFaceInput.kt`` (the Android adapter: ImageProxy + ML Kit Face -> ByteBuffer). ``KotlinPreprocessor`` compiles
the pure core with ``kotlinc`` and runs it on the JVM, so tests and ``ftk evaluate --simulate-app after`` measure
what the app computes, not a Python copy of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit import __version__
from toolkit.data.crop import ALIGN_TEMPLATE_112
from toolkit.data.detect import cache_dir
from toolkit.errors import DependencyError, InputError
from toolkit.io import sha256_file
from toolkit.spec import ModelSpec

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
CORE_FILE = "FtkFacePreprocessor.kt"
ADAPTER_FILE = "FtkFaceInput.kt"
CONFIG_FILE = "FtkModelConfig.kt"
HARNESS_FILE = "FtkJvmHarness.kt"
HARNESS_PACKAGE = "ftk.jvm"
KIND_ALIGN, KIND_BOX, KIND_QUIT = 0, 1, 2
_PACKAGE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}\.tflite")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_WORD = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
ROTATIONS = (0, 90, 180, 270)


def template_fingerprint() -> str:
    """sha256 of the core's template: crops made by the generated Kotlin are valid only for this template."""
    return sha256_file(TEMPLATES / CORE_FILE)


def model_id(sha256: str) -> str:
    """The id enrolled records carry: the first 12 hex digits of the deployed .tflite's sha256."""
    return sha256[:12]


def _kotlin_double(value: float) -> str:
    text = repr(float(value))
    return text if any(c in text for c in ".eE") else text + ".0"


def _fill(template: str, values: dict[str, str]) -> str:
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    if "@" in "".join(line for line in text.splitlines() if not line.lstrip().startswith("//")):
        raise RuntimeError(f"unfilled placeholder in {template}")  # a template bug, never user input
    return text


def _values(spec: ModelSpec, package: str, model_file: str, model_sha256: str) -> dict[str, str]:

    spec.require_raw_pixels("the app's preprocessor")  # it feeds 0..255; channel order, crop: checked by the spec
    # Every value is rendered from a checked, typed field: nothing from a manifest reaches the source verbatim.
    for what, value, pattern in (("package", package, _PACKAGE), ("model file", model_file, _FILE),
                                 ("sha256", model_sha256, _SHA256), ("backbone", spec.backbone, _WORD)):
        if not pattern.fullmatch(value):
            raise InputError(f"cannot generate Kotlin for {what} {value!r}")
    template = ALIGN_TEMPLATE_112 * (spec.input_size / 112.0)
    return {"FTK_VERSION": __version__, "PACKAGE": package, "MODEL_FILE": model_file, "MODEL_SHA256": model_sha256,
            "BACKBONE": spec.backbone, "INPUT_SIZE": str(int(spec.input_size)),
            "EMBEDDING_DIM": str(int(spec.embedding_dim)), "CROP": {"align": "align", "box": "box"}[spec.crop],
            "BOX_MARGIN": str(int(spec.box_margin)), "CHANNEL_ORDER": {"RGB": "RGB", "BGR": "BGR"}[spec.channel_order],
            "MODEL_ID": model_id(model_sha256),
            "TEMPLATE": ", ".join(_kotlin_double(v) for v in template.ravel())}


def generate_sources(spec: ModelSpec, package: str, model_file: str, model_sha256: str,
                     threshold: float | None = None, with_config: bool = False) -> dict[str, str]:
    """{file name: Kotlin source} of the core and the Android adapter for ``spec``, in ``package``; with
    ``with_config`` also ``FtkModelConfig.kt``, the contract's constants (``threshold`` None: not calibrated)."""
    values = _values(spec, package, model_file, model_sha256)
    sources = {CORE_FILE: _fill(CORE_FILE, values), ADAPTER_FILE: _fill(ADAPTER_FILE, values)}
    if with_config:
        known = threshold is not None
        values["THRESHOLD"] = _kotlin_double(threshold) if known else "Double.NaN"
        values["THRESHOLD_NOTE"] = "the value ftk deploy was given" if known else \
            "NOT SET: deploy with --threshold auto or VALUE; NaN matches nothing"
        sources[CONFIG_FILE] = _fill(CONFIG_FILE, values)
    return sources


# ----------------------------------------------------------------------------------------------------------------
# the JVM
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KotlinToolchain:
    kotlinc: str
    java: str


def find_kotlin() -> KotlinToolchain:
    """kotlinc and java, or a DependencyError that says how to get them."""
    kotlinc, java = shutil.which("kotlinc"), shutil.which("java")
    if kotlinc is None or java is None:
        missing = " and ".join(n for n, p in (("kotlinc", kotlinc), ("java", java)) if p is None)
        raise DependencyError(f"{missing} not found: running the app's preprocessing on the JVM needs them",
                              hint="apt-get install kotlin (scripts/setup.sh does this)")
    return KotlinToolchain(kotlinc, java)


def _cache_root() -> Path:

    return cache_dir() / "kotlin"


def compile_core(spec: ModelSpec, model_sha256: str = "0" * 64) -> Path:
    """A runnable jar of the generated core + the JVM driver, compiled once per generated source (cached)."""
    tools = find_kotlin()
    core = _fill(CORE_FILE, _values(spec, HARNESS_PACKAGE, "jvm.tflite", model_sha256))
    harness = _fill(HARNESS_FILE, {"PACKAGE": HARNESS_PACKAGE})
    digest = hashlib.sha256((core + "\0" + harness).encode()).hexdigest()[:24]
    jar = _cache_root() / f"ftk-preprocessor-{digest}.jar"
    if jar.is_file():
        return jar
    build = _cache_root() / f"build-{digest}-{os.getpid()}"
    build.mkdir(parents=True, exist_ok=True)
    try:
        (build / CORE_FILE).write_text(core, encoding="utf-8")
        (build / HARNESS_FILE).write_text(harness, encoding="utf-8")
        # kotlinc writes a jar only to a name ending in .jar (anything else is taken as a folder).
        proc = subprocess.run([tools.kotlinc, CORE_FILE, HARNESS_FILE, "-include-runtime", "-d", "out.jar"],
                              cwd=build, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise DependencyError(f"kotlinc failed on the generated preprocessor: {_first_error(proc.stderr)}")
        os.replace(build / "out.jar", jar)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    log.info("compiled the generated preprocessor to %s", jar)
    return jar


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or ["no output"])[0]


def to_argb(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB -> int32 HxW 0xFFRRGGBB (Bitmap.getPixels order)."""
    rgb = np.asarray(rgb, np.uint32)
    return (0xFF000000 | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]).astype(np.uint32)


class JvmProcess:
    """One JVM that answers binary requests on stdin/stdout; a context manager (sends "quit", int32 2, on exit)."""
    _proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def __enter__(self):
        import tempfile

        # stderr to a file, not a pipe nobody drains while the JVM runs (a long stack trace could block it).
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(self.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        return self

    def __exit__(self, *exc) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.write(struct.pack(">i", KIND_QUIT))
            proc.stdin.close()
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            self._stderr.close()

    def _send(self, payload: bytes) -> None:
        if self._proc is None:
            raise RuntimeError(f"use {type(self).__name__} as a context manager")
        self._proc.stdin.write(payload)
        self._proc.stdin.flush()

    def _read(self, n: int) -> bytes:
        data = self._proc.stdout.read(n)
        if len(data) != n:
            raise EOFError("short reply")
        return data

    def _stopped(self, exc: Exception, what: str) -> DependencyError:
        """The error for a JVM that stopped answering: its first stderr line."""
        self._proc.wait(timeout=10)
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return DependencyError(f"{what} stopped: {lines[0] if lines else exc}")


class KotlinPreprocessor(JvmProcess):
    """The generated FtkFacePreprocessor running in one JVM process; use as a context manager."""
    def __init__(self, spec: ModelSpec, model_sha256: str = "0" * 64):
        self.spec = spec
        self.jar = compile_core(spec, model_sha256)

    def argv(self) -> list[str]:
        return [find_kotlin().java, "-cp", str(self.jar), f"{HARNESS_PACKAGE}.FtkJvmHarnessKt"]

    def aligned(self, sensor_rgb: np.ndarray, rotation: int, landmarks, mirrored: bool = False) -> np.ndarray:
        points = np.asarray(landmarks, np.float32).reshape(-1)
        if points.shape != (10,):
            raise InputError("alignment needs 5 (x, y) landmarks")
        return self._request(KIND_ALIGN, sensor_rgb, rotation, mirrored, points)

    def box(self, sensor_rgb: np.ndarray, rotation: int, box, mirrored: bool = False) -> np.ndarray:
        return self._request(KIND_BOX, sensor_rgb, rotation, mirrored, np.asarray(box, np.float32).reshape(4))

    def face(self, sensor_rgb: np.ndarray, rotation: int, box, landmarks, mirrored: bool = False) -> np.ndarray:
        """What the deployed app computes for one face: the crop the spec asks for."""
        if self.spec.crop == "align":
            return self.aligned(sensor_rgb, rotation, landmarks, mirrored)
        return self.box(sensor_rgb, rotation, box, mirrored)

    def _request(self, kind: int, sensor_rgb: np.ndarray, rotation: int, mirrored: bool,
                 points: np.ndarray) -> np.ndarray:
        if rotation not in ROTATIONS:
            raise InputError(f"rotation must be one of {ROTATIONS}, got {rotation}")
        height, width = sensor_rgb.shape[:2]
        header = struct.pack(">5i", kind, width, height, rotation, int(mirrored))
        payload = header + points.astype(">f4").tobytes() + to_argb(sensor_rgb).astype(">u4").tobytes()
        try:
            self._send(payload)
            status = struct.unpack(">i", self._read(4))[0]
            if status != 0:
                length = struct.unpack(">H", self._read(2))[0]
                raise InputError(f"the app's preprocessor refused the face: {self._read(length).decode()}")
            size = self.spec.input_size
            data = self._read(4 * size * size * 3)
        except (BrokenPipeError, EOFError) as exc:
            raise self._stopped(exc, "the JVM preprocessor") from None
        return np.frombuffer(data, ">f4").astype(np.float32).reshape(size, size, 3)
