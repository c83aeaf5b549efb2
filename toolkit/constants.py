"""Values more than one stage relies on, defined once (stdlib only, so the CLI can show them in ``--help``).

Each name here used to be re-typed in several modules; a change here reaches every command.
"""

from __future__ import annotations

import os
from pathlib import Path

from toolkit.errors import InputError

# The false-accept rate at which a cosine threshold is recommended (evaluate, deploy --threshold auto, compare,
# match, the pipeline's parity decisions).
DEFAULT_FAR = 1e-3
# The export manifest beside the .tflite files (toolkit.manifest reads and verifies it).
MANIFEST_NAME = "manifest.json"
# Real faces the int8 export calibrates on by default (export, init-checkpoint's BatchNorm re-estimate, pipeline).
DEFAULT_CALIBRATION_FACES = 300
# Faces parity-check compares by default, and the held-out sample an int8 export records for it (toolkit.held_out).
DEFAULT_PARITY_FACES = 64
PARITY_SAMPLE_NAME = "parity_faces.npz"
# LiteRT interpreter threads when none are given: every command's --threads (bench included), the pipeline's bench
# and the library's loaders. 2: the phones ftk targets have at least two big cores, and so does a laptop.
DEFAULT_THREADS = 2

# --- bounds on what a user (or a file) can ask for: one range each, checked everywhere the value enters ----------
# A face model's square input size (CLI flags, checkpoints, contracts, configs). Face embedders take 112-160 px;
# far larger sizes only make evaluate/export allocate gigabytes (100000 px: 80 GB).
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 8, 1024
# An embedding's length (a contract claiming more describes no face model).
MAX_EMBEDDING_DIM = 65536
# Classifier head size: more than this allocates gigabytes before anything is trained.
MAX_NUM_CLASSES = 1_000_000
# Interpreter threads, host or device (--threads 1000000 segfaulted LiteRT and exhausted a phone's threads).
MAX_THREADS = 256
# Pixels (width x height, read from the file's header before decoding) of one photo; a 13000 x 13000 PNG takes
# 6 GB in MTCNN. $FTK_MAX_IMAGE_PIXELS sets another cap.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


def max_image_pixels() -> int:
    """The pixel cap for one photo: $FTK_MAX_IMAGE_PIXELS (a positive integer) when set, else the default."""
    text = os.environ.get("FTK_MAX_IMAGE_PIXELS", "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    if not (text.isascii() and text.isdigit() and len(text) <= 12 and int(text) > 0):
        raise InputError(f"FTK_MAX_IMAGE_PIXELS must be a positive number of pixels, got {text[:40]!r}",
                         hint=f"e.g. {DEFAULT_MAX_IMAGE_PIXELS} (the default), or unset it")
    return int(text)


def cache_root() -> Path:
    """Where ftk caches detections, crops, embeddings, runtimes and binaries: $FTK_CACHE_DIR, else ~/.cache/ftk."""
    root = os.environ.get("FTK_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "ftk"


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed; imported on first use)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt

# The face-picking rule when a photo has several faces (toolkit.data.faces explains both); every command that
# detects faces takes --pick.
PICK_RULES = ("center", "confidence")
DEFAULT_PICK = "center"
