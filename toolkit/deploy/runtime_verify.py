"""Run a .tflite under the app's exact TensorFlow Lite runtime, offline, and compare with ai-edge-litert.

The app's runtime (e.g. ``org.tensorflow:tensorflow-lite:2.12.0``) ships the same kernels as the desktop
``tensorflow-cpu`` of that version, so a private venv with ``tensorflow-cpu==<version>`` (and ``numpy<1.24``, which
TF 2.12 needs) runs the model the way the phone will. The venv is built on demand and cached under
``$FTK_RUNTIME_CACHE`` (default ``$FTK_CACHE_DIR/runtimes`` or ``~/.cache/ftk/runtimes``); the model runs in a
subprocess started with an argv list, and the embeddings come back as ``.npy`` (no pickle).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.errors import CheckFailed, DependencyError, ModelFileError

log = logging.getLogger(__name__)

READY_MARKER = ".ftk-ready.json"

# Runs inside the isolated venv: load with tf.lite.Interpreter, embed each input, save raw outputs as .npy.
_RUNNER = r'''
import json, sys
import numpy as np
import tensorflow as tf
model_path, inputs_path, output_path = sys.argv[1:4]
interpreter = tf.lite.Interpreter(model_path=model_path, num_threads=1)
interpreter.allocate_tensors()
inp = interpreter.get_input_details()[0]
out = interpreter.get_output_details()[0]
faces = np.load(inputs_path, allow_pickle=False)
rows = []
for i in range(len(faces)):
    interpreter.set_tensor(inp["index"], faces[i:i + 1].astype(inp["dtype"]))
    interpreter.invoke()
    rows.append(np.array(interpreter.get_tensor(out["index"])).reshape(-1))
np.save(output_path, np.stack(rows).astype(np.float32), allow_pickle=False)
print(json.dumps({"tensorflow": tf.__version__, "numpy": np.__version__}))
'''


@dataclass
class RuntimeVerifyResult:
    runtime_version: str
    tensorflow_version: str
    venv: str
    venv_build_s: float | None  # None: the cached venv was reused
    num_inputs: int
    cosine_min: float
    cosine_mean: float
    max_abs_diff: float
    passed: bool
    min_cosine_required: float


def runtime_cache_dir() -> Path:
    explicit = os.environ.get("FTK_RUNTIME_CACHE")
    if explicit:
        return Path(explicit)
    from toolkit.constants import cache_root

    return cache_root() / "runtimes"


def runtime_requirements(version: str) -> list[str]:
    # TF <= 2.12 was built against the numpy 1.x C API and breaks with numpy >= 1.24.
    from toolkit.tflite.op_versions import parse_version

    numpy_pin = "numpy<1.24" if parse_version(version).release[:2] <= (2, 12) else "numpy<2"
    return [f"tensorflow-cpu=={version}", numpy_pin]


def runtime_venv(version: str, build: bool = True, timeout_s: int = 1800) -> tuple[Path, float | None]:
    """The cached venv with ``tensorflow-cpu==version`` (built now if missing and ``build``), and its build time."""
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    root = runtime_cache_dir()
    venv = root / f"tensorflow-cpu-{version}-{py}"
    python = venv / "bin" / "python"
    if (venv / READY_MARKER).is_file() and python.exists():
        return venv, None
    if not build:
        raise DependencyError(f"no cached tensorflow-cpu {version} runtime in {root}")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{venv.name}.building-", dir=root))
    requirements = runtime_requirements(version)
    log.info("building the tensorflow-cpu %s runtime venv in %s (a few minutes, once)", version, venv)
    started = time.monotonic()
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    try:
        steps = [
            [base_python, "-m", "venv", str(staging)],
            [str(staging / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
             *requirements],
        ]
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise DependencyError(
                    f"cannot build the runtime venv for tensorflow-cpu=={version} "
                    f"(Python {sys.version_info.major}.{sys.version_info.minor}): " + " | ".join(tail)[-400:],
                    hint="--verify-runtime needs PyPI access and a tensorflow-cpu wheel for this Python; "
                         "deploy without --verify-runtime, or set FTK_RUNTIME_CACHE to a prepared cache")
        check = subprocess.run([str(staging / "bin" / "python"), "-c",
                                "import tensorflow as tf; print(tf.__version__)"],
                               capture_output=True, text=True, timeout=600)
        if check.returncode != 0 or check.stdout.strip() != version:
            raise DependencyError(f"the runtime venv does not import tensorflow {version}: "
                                  f"{(check.stderr or check.stdout).strip()[-300:]}")
        elapsed = time.monotonic() - started
        (staging / READY_MARKER).write_text(json.dumps({"requirements": requirements, "build_s": round(elapsed, 1)}))
        if venv.exists():  # a concurrent build won: keep theirs
            shutil.rmtree(staging, ignore_errors=True)
            return venv, elapsed
        os.replace(staging, venv)  # venv scripts embed the staging path; we only ever call bin/python
        return venv, elapsed
    except subprocess.TimeoutExpired:
        raise DependencyError(f"building the tensorflow-cpu {version} venv took over {timeout_s} s") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def run_in_runtime(venv: Path, model_path: Path, faces: np.ndarray, timeout_s: int = 600) -> tuple[np.ndarray, str]:
    """Raw model outputs for float32 NHWC ``faces`` under the venv's tf.lite.Interpreter, and its TF version."""
    with tempfile.TemporaryDirectory(prefix="ftk-runtime-") as tmp:
        tmp_dir = Path(tmp)
        script = tmp_dir / "run_tflite.py"
        script.write_text(_RUNNER, encoding="utf-8")
        inputs, outputs = tmp_dir / "inputs.npy", tmp_dir / "outputs.npy"
        np.save(inputs, faces.astype(np.float32), allow_pickle=False)
        argv = [str(venv / "bin" / "python"), str(script), str(model_path), str(inputs), str(outputs)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        env.pop("PYTHONPATH", None)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env=env)
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            reason = next((line for line in reversed(lines) if "Error" in line or "error" in line),
                          lines[-1] if lines else f"exit code {done.returncode}")
            raise CheckFailed(f"the app's runtime ({venv.name}) cannot run {model_path.name}: {reason[:300]}",
                              hint="bump the app's runtime (--bump-runtime) or export with older op versions")
        info = json.loads(done.stdout.strip().splitlines()[-1])
        return np.load(outputs, allow_pickle=False), info["tensorflow"]


def verification_faces(input_size: int, count: int = 8, seed: int = 0) -> np.ndarray:
    """Seeded smooth random uint8 images (no data needed): the reference set's generator."""
    from toolkit.reference import synthetic_inputs

    return synthetic_inputs(input_size, count, seed)


def verify_runtime(model_path: str | Path, spec, runtime_version: str, faces: np.ndarray | None = None,
                   min_cosine: float = 0.999) -> RuntimeVerifyResult:
    """Embed the same inputs with the app's runtime and with ai-edge-litert; cosine per input."""
    from toolkit.embedders import TFLiteEmbedder, l2_normalize

    model_path = Path(model_path)
    if not model_path.is_file():
        raise ModelFileError(f"model file not found: {model_path}")
    faces = verification_faces(spec.input_size) if faces is None else spec.check_faces(faces)
    venv, build_s = runtime_venv(runtime_version)
    theirs_raw, tf_version = run_in_runtime(venv, model_path, faces.astype(np.float32))
    ours = TFLiteEmbedder(model_path, spec).embed(faces)
    theirs = l2_normalize(theirs_raw.reshape(len(faces), -1))
    cosine = np.sum(ours * theirs, axis=1)
    result = RuntimeVerifyResult(
        runtime_version=runtime_version, tensorflow_version=tf_version, venv=str(venv),
        venv_build_s=None if build_s is None else round(build_s, 1), num_inputs=len(faces),
        cosine_min=float(cosine.min()), cosine_mean=float(cosine.mean()),
        max_abs_diff=float(np.abs(ours - theirs).max()), passed=bool(cosine.min() >= min_cosine),
        min_cosine_required=min_cosine)
    log.info("runtime %s vs ai-edge-litert: cosine min %.6f mean %.6f", tf_version, result.cosine_min,
             result.cosine_mean)
    return result
