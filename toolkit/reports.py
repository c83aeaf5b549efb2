"""Where evaluation reports live, so deploy/compare/match can find the threshold calibrated for *this* artifact.

Convention: ``ftk evaluate MODEL`` writes ``<MODEL without suffix>.eval/report.json`` unless ``--out`` says
otherwise (when the model's folder is not writable, e.g. a read-only or shared model store, the same name in the
current folder); the report records ``model_sha256``. A report is only used for the exact file it was computed on.

Report keys the consumers rely on (evaluate writes them):
``model_sha256``, ``model_path``, ``spec``, ``verification``: {``accuracy_mean``, ``accuracy_std``, ``auc``, ``eer``,
``tar_at_far``: {"0.01": x, "0.001": y}, ``thresholds_at_far``: {"0.01": t, "0.001": t2}, ``best_threshold``}.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from toolkit.io import read_json, sha256_file

log = logging.getLogger(__name__)

REPORT_NAME = "report.json"


def default_eval_dir(model_path: str | Path) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".eval")


def fallback_eval_dir(model_path: str | Path) -> Path:
    """Where ``ftk evaluate`` writes when the model's own folder is not writable: the current folder."""
    return Path.cwd() / default_eval_dir(model_path).name


def writable_eval_dir(model_path: str | Path) -> Path:
    """The default report folder: beside the model, else (read-only model folder) the current folder."""
    default = default_eval_dir(model_path)
    parent = default.parent
    if os.access(parent, os.W_OK | os.X_OK) and (not default.exists() or os.access(default, os.W_OK | os.X_OK)):
        return default
    fallback = fallback_eval_dir(model_path)
    log.warning("%s is not writable: writing the report to %s instead", parent, fallback)
    return fallback


def find_eval_report(model_path: str | Path, report: str | Path | None = None) -> dict[str, Any] | None:
    """The evaluation report for exactly this model file (sha256 must match), or None."""
    model_path = Path(model_path)
    candidates = [Path(report)] if report else [default_eval_dir(model_path) / REPORT_NAME,
                                                fallback_eval_dir(model_path) / REPORT_NAME]
    for candidate in dict.fromkeys(candidates):
        if not candidate.is_file():
            continue
        data = read_json(candidate, "evaluation report")
        if data.get("model_sha256") == sha256_file(model_path):
            return data
        log.warning("%s was computed for another version of %s; ignoring it", candidate, model_path.name)
    return None


def threshold_at_far(report: dict[str, Any], far: float) -> float | None:
    """The cosine threshold the report calibrated at ``far`` (keys are stringified floats)."""
    table = (report.get("verification") or {}).get("thresholds_at_far") or {}
    for key, value in table.items():
        if abs(float(key) - far) <= 1e-12 + 1e-6 * far:
            return float(value)
    return None
