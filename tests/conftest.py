"""Shared fixtures: the ../shared lookup (skip with a reason when absent), real LFW faces, tiny models."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep the detection/embedding caches of a test run out of the user's home. The TensorFlow 2.12 runtime venv
    (1.3 GB, immutable, keyed by version) stays in the user's cache, where scripts/setup.sh builds it once."""
    if "FTK_RUNTIME_CACHE" not in os.environ:
        from toolkit.constants import cache_root

        os.environ["FTK_RUNTIME_CACHE"] = str(cache_root() / "runtimes")  # read before FTK_CACHE_DIR moves
    if "FTK_CACHE_DIR" not in os.environ:
        os.environ["FTK_CACHE_DIR"] = str(tmp_path_factory.mktemp("ftk-cache"))
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
    import torch

    from toolkit.checkpoint import CheckpointMeta, save_checkpoint
    from toolkit.init_checkpoint import recalibrate_batchnorm
    from toolkit.models.face_model import FaceModel
    from toolkit.models.registry import default_spec

    torch.manual_seed(0)
    spec = default_spec("tiny")
    model = FaceModel(spec, 4)
    recalibrate_batchnorm(model, synthetic_faces)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, CheckpointMeta(spec=spec, num_classes=4, class_names=list("abcd"),
                                                weights_source="random+bn-calibrated"))
    return path


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
