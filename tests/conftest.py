"""Shared fixtures: the ../shared lookup (skip with a reason when absent), real LFW faces, tiny models."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Under pytest-xdist the workers share the cores: give each its share of torch's intra-op threads (set before torch
# is imported), or N workers x N threads thrash a small machine.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))


def shared_root() -> Path | None:
    """``$FTK_SHARED`` or ``../shared`` beside the checkout."""
    env = os.environ.get("FTK_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared")
    for c in candidates:
        if (c / "data").is_dir() or (c / "models").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    root = shared_root()
    if root is None:
        pytest.skip("../shared (LFW and pretrained weights) not found; set FTK_SHARED to run this test")
    return root


@pytest.fixture(scope="session")
def lfw_dir(shared_dir) -> Path:
    path = shared_dir / "data" / "lfw" / "lfw-deepfunneled"
    if not path.is_dir():
        pytest.skip(f"LFW images not found at {path}")
    return path


@pytest.fixture(scope="session")
def lfw_pairs_dir(shared_dir) -> Path:
    path = shared_dir / "data" / "lfw"
    if not (path / "pairsDevTest.txt").is_file():
        pytest.skip(f"LFW pairs files not found in {path}")
    return path


@pytest.fixture(scope="session")
def mobilefacenet_dir(shared_dir) -> Path:
    path = shared_dir / "models" / "mobilefacenet-ms1m"
    if not (path / "mobilefacenet.pt").is_file():
        pytest.skip(f"pretrained MobileFaceNet not found in {path}")
    return path


# A few LFW identities with several images each: enough for calibration and parity, small enough for CI.
FACE_PEOPLE = ["Colin_Powell", "George_W_Bush", "Serena_Williams", "Tony_Blair", "Gerhard_Schroeder", "Ariel_Sharon"]


@pytest.fixture(scope="session")
def face_folder(lfw_dir, tmp_path_factory) -> Path:
    """A Person_Name/*.jpg folder (in tmp, never in the repo) with 6 real LFW images of 6 people."""
    root = tmp_path_factory.mktemp("faces")
    for person in FACE_PEOPLE:
        src = lfw_dir / person
        if not src.is_dir():
            continue
        (root / person).mkdir()
        for image in sorted(src.glob("*.jpg"))[:6]:
            shutil.copy(image, root / person / image.name)
    return root


def write_face_pairs(path: Path, root: Path) -> None:
    """A small LFW-format pairs file over the face_folder people (one set, no header): 3 same-person pairs per
    person, as many different-person pairs."""
    people = [p for p in FACE_PEOPLE if (root / p).is_dir()]
    lines = []
    for person in people:
        images = sorted((root / person).glob("*.jpg"))
        for a, b in ((0, 1), (2, 3), (4, 5)):
            if b < len(images):
                ia, ib = (int(images[k].stem.rsplit("_", 1)[1]) for k in (a, b))
                lines.append(f"{person}\t{ia}\t{ib}")
    n_same = len(lines)
    for k in range(n_same):
        p1, p2 = people[k % len(people)], people[(k + 1) % len(people)]
        i1 = int(sorted((root / p1).glob("*.jpg"))[k % 3].stem.rsplit("_", 1)[1])
        i2 = int(sorted((root / p2).glob("*.jpg"))[(k + 1) % 3].stem.rsplit("_", 1)[1])
        lines.append(f"{p1}\t{i1}\t{p2}\t{i2}")
    path.write_text("\n".join(lines) + "\n")


def run_root(tmp_path_factory) -> Path:
    """A folder of this test run shared by all its pytest-xdist workers (each has its own basetemp below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """``build(folder)`` once per test run, whichever worker asks first; the others wait and reuse it.

    Treat the folder as read-only (copy it before changing anything): every test of the run sees it.
    """
    from filelock import FileLock

    root = run_root(tmp_path_factory) / "built-once"
    root.mkdir(exist_ok=True)
    folder = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (folder / ".built").is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep the detection/embedding caches of a test run out of the user's home. The TensorFlow 2.12 runtime venv
    (1.3 GB, immutable, keyed by version) stays in the user's cache, where scripts/setup.sh builds it once."""
    if "FTK_RUNTIME_CACHE" not in os.environ:
        from toolkit.constants import cache_root

        os.environ["FTK_RUNTIME_CACHE"] = str(cache_root() / "runtimes")  # read before FTK_CACHE_DIR moves
    if "FTK_CACHE_DIR" not in os.environ:  # one per run, shared by its workers: detections are made once
        cache = run_root(tmp_path_factory) / "ftk-cache"
        cache.mkdir(exist_ok=True)
        os.environ["FTK_CACHE_DIR"] = str(cache)
    yield


@pytest.fixture(scope="session")
def synthetic_faces() -> np.ndarray:
    """Seeded smooth random images at the tiny model's size (for tests that need no real faces)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(24, 8, 8, 3)).astype(np.float32)
    up = base.repeat(4, axis=1).repeat(4, axis=2)
    return np.clip(up + rng.normal(0, 8, up.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, synthetic_faces) -> Path:
    """A tiny-backbone checkpoint with a 4-class head and BatchNorm re-estimated on seeded inputs."""

    def build(folder: Path) -> None:
        import torch

        from toolkit.checkpoint import CheckpointMeta, save_checkpoint
        from toolkit.models.batchnorm import recalibrate_batchnorm
        from toolkit.models.face_model import FaceModel
        from toolkit.models.registry import default_spec

        torch.manual_seed(0)
        spec = default_spec("tiny")
        model = FaceModel(spec, 4)
        recalibrate_batchnorm(model, synthetic_faces)
        save_checkpoint(folder / "tiny.pt", model, CheckpointMeta(spec=spec, num_classes=4, class_names=list("abcd"),
                                                                  weights_source="random+bn-calibrated"))

    # Tests write beside it (evaluation reports): each worker gets its own copy of the one build.
    dest = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    shutil.copyfile(built_once(tmp_path_factory, "tiny-checkpoint", build) / "tiny.pt", dest)
    return dest


@pytest.fixture(scope="session")
def tiny_checkpoint_export(tmp_path_factory, tiny_checkpoint) -> Path:
    """``ftk export`` of the tiny checkpoint (model_float32.tflite + manifest.json), converted once per test run
    for every test that needs it. Read-only: use :func:`copy_of` before writing beside the model."""

    def build(folder: Path) -> None:
        from toolkit.export import export_model

        export_model(tiny_checkpoint, folder / "export", progress=False)

    return built_once(tmp_path_factory, "tiny-checkpoint-export", build) / "export"


def mounted_tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "256k") at ``mount_point``, unmounted afterwards: a disk that fills. Skips the test
    where mounting needs root or is not allowed. Use as ``yield from mounted_tmpfs(...)`` in a fixture."""
    import subprocess

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("the full-disk tests mount a small tmpfs, which needs root")
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def copy_of(folder: Path, tmp_path_factory, name: str) -> Path:
    """A private copy of a built-once folder (a test may write into it)."""
    return Path(shutil.copytree(folder, tmp_path_factory.mktemp(name) / folder.name))


def write_checkpoint_claiming_classes(source: Path, dest: Path, num_classes: int) -> Path:
    """A copy of ``source`` whose metadata claims ``num_classes`` while its head keeps its real size."""
    import json

    import torch

    payload = torch.load(source, weights_only=True)
    meta = json.loads(payload["metadata_json"])
    meta["num_classes"] = num_classes
    payload["metadata_json"] = json.dumps(meta)
    torch.save(payload, dest)
    return dest


# Test files that take longest (seconds on this 2-core machine, `pytest --durations`), run first: with
# `--dist loadfile --no-loadscope-reorder` (scripts/test.sh) pytest-xdist hands whole files to workers in collection
# order, so starting the long ones early keeps both workers busy to the end (its default order, most tests first,
# left the 120 s one-test file for last).
SLOW_FILES_FIRST = [
    "integration/test_export_inception.py",  # ~120 s: InceptionResnetV1 float32 + int8 conversions
    "integration/test_mobilefacenet.py",  # ~56 s
    "deploy/test_kotlin_preprocessor.py",  # ~53 s: kotlinc + 1600 crops on the JVM
    "unit/test_export.py",  # ~52 s
    "unit/test_train.py",  # ~46 s
    "unit/test_docs_commands.py",  # ~40 s: every command the docs show
    "integration/test_pipeline.py",  # ~38 s
    "deploy/test_contract_metadata.py",  # ~26 s: TensorFlow 2.12 in its venv
]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}

    def order(item) -> int:
        path = Path(str(item.fspath)).as_posix()
        return next((rank[name] for name in rank if path.endswith("tests/" + name)), len(rank))

    items.sort(key=order)  # stable: the tests of a file, and the other files, keep their order
