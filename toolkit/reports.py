"""Where evaluation reports live, so deploy/compare/match can find the threshold calibrated for *this* artifact.

Convention: ``ftk evaluate MODEL`` writes ``<MODEL without suffix>.eval/report.json`` unless ``--out`` says
otherwise; the report records ``model_sha256``. A report is only used for the exact file it was computed on.

Report keys the consumers rely on (evaluate writes them):
``model_sha256``, ``model_path``, ``spec``, ``verification``: {``accuracy_mean``, ``accuracy_std``, ``auc``, ``eer``,
``tar_at_far``: {"0.01": x, "0.001": y}, ``thresholds_at_far``: {"0.01": t, "0.001": t2}, ``best_threshold``}.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from toolkit.io import read_json, sha256_file

log = logging.getLogger(__name__)

REPORT_NAME = "report.json"


def default_eval_dir(model_path: str | Path) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".eval")


def find_eval_report(model_path: str | Path, report: str | Path | None = None) -> dict[str, Any] | None:
    """The evaluation report for exactly this model file (sha256 must match), or None."""
    model_path = Path(model_path)
    candidate = Path(report) if report else default_eval_dir(model_path) / REPORT_NAME
    if not candidate.is_file():
        return None
    data = read_json(candidate, "evaluation report")
    if data.get("model_sha256") != sha256_file(model_path):
        log.warning("%s was computed for another version of %s; ignoring it", candidate, model_path.name)
        return None
    return data


def threshold_at_far(report: dict[str, Any], far: float) -> float | None:
    """The cosine threshold the report calibrated at ``far`` (keys are stringified floats)."""
    table = (report.get("verification") or {}).get("thresholds_at_far") or {}
    for key, value in table.items():
        if abs(float(key) - far) <= 1e-12 + 1e-6 * far:
            return float(value)
    return None
