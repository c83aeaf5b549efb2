"""The match threshold deploy writes into the app: given, calibrated for exactly this file (``auto``), or left as
it is; and what deploy refuses to ship unless forced (a degenerate threshold, a FAR the evaluation pairs cannot
resolve, a model that failed parity)."""

from __future__ import annotations

from pathlib import Path

from toolkit.errors import InputError
from toolkit.reports import calibrated_threshold, check_threshold, locate_eval_report
from toolkit.spec import ModelSpec

# Cosine thresholds above this are stricter than face-embedding models need (calibrated ones sit around 0.3-0.7).
SUSPICIOUS_THRESHOLD = 0.9
THRESHOLD_GAP_WARNING = 0.1


def resolve_threshold(threshold: float | str | None, model_path: Path, far: float, current: float | None,
                      warnings: list[str], spec: ModelSpec | None = None) -> tuple[float | None, str]:
    """(the threshold to write, "auto" | "given" | "unchanged"); None leaves the app's value, with a warning when
    it is far from the one calibrated for this file. One resolver behind it: toolkit.reports."""
    if threshold is None:
        calibrated = calibrated_threshold(model_path, far, spec).value
        if current is not None and calibrated is not None and abs(current - calibrated) > THRESHOLD_GAP_WARNING:
            warnings.append(f"the app's threshold {current:g} is far from the {calibrated:.4f} calibrated for this "
                            f"model at FAR {far:g}; pass --threshold auto to use it")
        elif current is not None and calibrated is None and current > SUSPICIOUS_THRESHOLD:
            warnings.append(f"the app's threshold {current:g} (cosine) is far stricter than face-embedding models "
                            f"need and will reject most genuine matches; run ftk evaluate on {model_path.name} "
                            "and deploy with --threshold auto")
        return None, "unchanged"
    if isinstance(threshold, str) and threshold.strip().lower() == "auto":
        choice = calibrated_threshold(model_path, far, spec)
        if choice.value is None and choice.report_path:
            raise InputError(f"--threshold auto: {choice.note}")
        if choice.value is None:
            raise InputError(f"--threshold auto needs the evaluation report of exactly {model_path.name}: "
                             f"{choice.note}", hint=f"run ftk evaluate {model_path} --pairs PAIRS first (the same folder, or --out "
                                      f"{model_path.with_suffix('.eval')}), or pass --threshold VALUE")
        return choice.value, "auto"
    return check_threshold(threshold), "given"


DEGENERATE_THRESHOLD = 0.9999  # a cosine threshold this high accepts nothing: collapsed embeddings or a bad report


def deploy_problems(threshold: float | None, source: str, model_path: Path, far: float, spec: ModelSpec,
                    parity_passed: bool | None) -> list[str]:
    """Why this model or threshold should not ship (deploy refuses them unless forced)."""
    problems = []
    if threshold is not None and threshold >= DEGENERATE_THRESHOLD:
        problems.append(f"the threshold {threshold!r} is degenerate (>= {DEGENERATE_THRESHOLD}): the app would reject "
                        "nearly every genuine match (collapsed embeddings? see ftk evaluate's warnings)")
    if source == "auto":
        found = locate_eval_report(model_path)
        resolvable = ((found[1].get("verification") or {}).get("far_resolvable") or {}) if found else {}
        key = next((k for k in resolvable if abs(float(k) - far) <= 1e-6 * far), None)
        if key is not None and resolvable[key] is False:
            problems.append(f"{found[0]} cannot resolve FAR {far:g}: it has fewer than {1 / far:g} different-person "
                            "pairs, so that threshold just sits above every impostor seen (evaluate on more pairs, "
                            "e.g. pairs.txt, or pass a --far the pairs resolve)")
    if parity_passed is False:
        problems.append(f"{model_path.name} failed its parity check against the PyTorch model")
    return problems


def gate_shipping(problems: list[str], force: bool, warnings: list[str]) -> None:
    if problems and not force:
        raise InputError("refusing to deploy: " + "; ".join(problems) + "; nothing was changed",
                         hint="fix that, or pass --force to deploy anyway")
    warnings += [f"deployed despite (--force): {p}" for p in problems]
