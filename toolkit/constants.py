"""Values more than one stage relies on, defined once (stdlib only, so the CLI can show them in ``--help``).

Each name here used to be re-typed in several modules; a change here reaches every command.
"""

from __future__ import annotations

import os
from pathlib import Path

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
