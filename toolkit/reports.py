"""Where evaluation reports live, so deploy/compare/match can find the threshold calibrated for *this* artifact.

Convention: ``ftk evaluate MODEL`` writes ``<MODEL without suffix>.eval/report.json`` in the current folder unless
``--out`` says otherwise: never beside the model, whose folder the user did not point ``--out`` at (a shared model
store, a dataset folder). ``ftk pipeline`` writes the reports of its TFLite files beside them, inside its run folder.
Readers look in both places, beside the model first; the report records ``model_sha256`` and is only used for the
exact file it was computed on.

Report keys the consumers rely on (evaluate writes them):
``model_sha256``, ``model_path``, ``spec``, ``verification``: {``accuracy_mean``, ``accuracy_std``, ``auc``, ``eer``,
``tar_at_far``: {"0.01": x, "0.001": y}, ``thresholds_at_far``: {"0.01": t, "0.001": t2}, ``best_threshold``}.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.constants import DEFAULT_FAR
from toolkit.errors import InputError
from toolkit.io import read_json, sha256_file
from toolkit.spec import ModelSpec
log = logging.getLogger(__name__)

REPORT_NAME = "report.json"


def eval_dir_name(model_path: str | Path) -> str:
    return Path(model_path).stem + ".eval"


def default_eval_dir(model_path: str | Path) -> Path:
    """``<model stem>.eval/`` beside the model: where ``ftk pipeline`` puts the reports of its exports (its run
    folder), and where readers look first."""
    return Path(model_path).with_name(eval_dir_name(model_path))


def working_eval_dir(model_path: str | Path) -> Path:
    """Where ``ftk evaluate`` writes without ``--out``: ``<model stem>.eval/`` in the current folder."""
    return Path.cwd() / eval_dir_name(model_path)


def find_eval_report(model_path: str | Path, report: str | Path | None = None,
                     folder: str | None = None) -> dict[str, Any] | None:
    """The evaluation report for exactly this model file (sha256 must match), or None."""
    found = locate_eval_report(model_path, report, folder)
    return None if found is None else found[1]


def locate_eval_report(model_path: str | Path, report: str | Path | None = None,
                       folder: str | None = None) -> tuple[Path, dict[str, Any]] | None:
    """(where, the report) for exactly this model file (sha256 must match), or None. ``report``: that file only;
    else ``folder`` (default ``<model stem>.eval``) beside the model, then in the current folder."""
    model_path = Path(model_path)
    folder = folder or eval_dir_name(model_path)
    candidates = [Path(report)] if report else [model_path.with_name(folder) / REPORT_NAME,
                                                Path.cwd() / folder / REPORT_NAME]
    for candidate in dict.fromkeys(candidates):
        if not candidate.is_file():
            continue
        data = read_json(candidate, "evaluation report")
        if data.get("model_sha256") == sha256_file(model_path):
            return candidate, data
        log.warning("%s was computed for another version of %s; ignoring it", candidate, model_path.name)
    return None


def threshold_at_far(report: dict[str, Any], far: float) -> float | None:
    """The cosine threshold the report calibrated at ``far`` (keys are stringified floats)."""
    table = (report.get("verification") or {}).get("thresholds_at_far") or {}
    for key, value in table.items():
        if abs(float(key) - far) <= 1e-12 + 1e-6 * far:
            return float(value)
    return None


# --- the one threshold resolver -------------------------------------------------------------------------------------
# The crop settings a calibrated threshold depends on: a report made with other crops does not apply to the model.
CROP_KEYS = ("crop", "box_margin", "input_size", "channel_order")


@dataclass
class ThresholdChoice:
    """The cosine threshold for same/different decisions (None: none calibrated, none given) and its origin."""

    value: float | None
    source: str  # "given" | "report" | "none"
    note: str  # one line for people: where the value came from, or why there is none
    far: float | None = None
    report_path: str | None = None


def check_threshold(value: Any, what: str = "--threshold") -> float:
    """A cosine threshold: a finite number in (-1, 1), whether typed by a user or read from a report."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a cosine similarity in (-1, 1), got {value!r}") from None
    if not math.isfinite(number) or not -1.0 < number < 1.0:
        raise InputError(f"{what} is {number:g}, not a cosine similarity in (-1, 1)",
                         hint="evaluate the model again (ftk evaluate), or pass --threshold VALUE")
    return number


def calibrated_threshold(model_path: str | Path, far: float = DEFAULT_FAR,
                         spec: "ModelSpec | None" = None, model_flags: str = "") -> ThresholdChoice:
    """The threshold ``ftk evaluate`` calibrated at ``far`` for exactly this file, made with the crops of ``spec``.

    No report, or none at that FAR: ``value`` None with a note that says what to run (``model_flags``: the flags
    that describe the model, e.g. ``--backbone mobilefacenet`` for a plain state_dict, so the command works). A report made with other
    crops (``--simulate-app``, another crop or margin than the model's spec) or holding a value that is not a
    cosine (NaN, 7.5) is refused: InputError.
    """
    if not 0.0 < far < 1.0:
        raise InputError(f"--far must be a rate in (0, 1), e.g. 1e-3, got {far}")
    found = locate_eval_report(model_path)
    if found is None:
        command = " ".join(["ftk evaluate", str(model_path), model_flags, "--pairs PAIRS"]).replace("  ", " ")
        where = f"{eval_dir_name(model_path)}/{REPORT_NAME} beside the model or in the current folder"
        return ThresholdChoice(None, "none", f"no evaluation report for this exact model ({where}; run "
                               f"`{command}` here with an LFW-style pairs file, or pass --threshold)")
    path, report = found
    _check_report_crops(path, report, spec)
    value = threshold_at_far(report, far)
    if value is None:
        known = sorted((report.get("verification") or {}).get("thresholds_at_far") or {})
        return ThresholdChoice(None, "none", f"{path} has no threshold at FAR {far:g} (it has: "
                                             f"{', '.join(known) or 'none'}); pass --far with one of those, or "
                                             "--threshold", report_path=str(path))
    value = check_threshold(value, f"the threshold at FAR {far:g} in {path}")
    return ThresholdChoice(value, "report", f"threshold {value:.4f} calibrated at FAR {far:g} ({path})", far=far,
                           report_path=str(path))


def _check_report_crops(path: Path, report: dict[str, Any], spec: "ModelSpec | None") -> None:
    crops = report.get("crops", "model spec")
    if crops != "model spec":
        raise InputError(f"{path} was measured with the crops of the {crops}, not the model's own: its threshold "
                         "does not apply", hint="run ftk evaluate without --simulate-app for the threshold")
    if spec is None:
        return
    measured = report.get("spec") or {}
    wanted = spec.to_dict()
    differ = [f"{k}: report {measured.get(k)!r}, model {wanted[k]!r}" for k in CROP_KEYS
              if k in measured and measured.get(k) != wanted[k]]
    if differ:
        raise InputError(f"{path} was made with other crops than the model's spec ({'; '.join(differ)}): its "
                         "threshold does not apply", hint="run ftk evaluate again on this file")


def resolve_threshold(model_path: str | Path | None, threshold: float | None = None, far: float = DEFAULT_FAR,
                      spec: "ModelSpec | None" = None, model_flags: str = "") -> ThresholdChoice:
    """``threshold`` if given (checked), else the one calibrated for exactly this model file at ``far``."""
    if threshold is not None:
        value = check_threshold(threshold)
        return ThresholdChoice(value, "given", f"threshold {value:.4f} (given)")
    if model_path is None:
        return ThresholdChoice(None, "none", "no calibrated threshold (model path unknown); pass --threshold")
    return calibrated_threshold(model_path, far, spec, model_flags)
