"""The run: every stage in order (up-to-date ones skipped), the optional deploy, report.json + report.html, and
the budget."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.config import dump_config, to_plain
from toolkit.deploy import deploy
from toolkit.errors import CheckFailed, InputError
from toolkit.html_report import write_html_report
from toolkit.io import copy_writable, ensure_writable_dir, sha256_file, write_json_atomic
from toolkit.locks import exclusive
from toolkit.pipeline.config import BudgetSection, DeploySection, PipelineConfig, load_pipeline_config
from toolkit.pipeline.runner import RunContext, StageRecord, StageRunner, _now, check_force, to_run_relative
from toolkit.pipeline.stages import STAGE_PLANS, app_after_stage
from toolkit.versions import tool_versions


@dataclass
class PipelineResult:
    run_dir: Path
    report_json: Path
    report_html: Path
    stages: list[StageRecord]
    ladder: list[dict[str, Any]]  # paths relative to run_dir
    budget_failures: list[str]
    seconds: float

    @property
    def passed(self) -> bool:
        return not self.budget_failures


def run_pipeline(config_path: str | Path, run_dir: str | Path, force: tuple[str, ...] = (),
                 progress: bool = True) -> PipelineResult:
    """Run every stage (skipping up-to-date ones) and write report.json + report.html into ``run_dir``."""
    config_path = Path(config_path)
    config = load_pipeline_config(config_path)
    check_force(set(force))
    _check_inputs(config)
    # Absolute while running (the libraries get absolute paths); every record stores paths relative to it.
    root = ensure_writable_dir(Path(run_dir).resolve())
    with exclusive(root, "the run folder"):  # a second run into it would overwrite this one's stages
        started = time.perf_counter()
        run = RunContext(config, config_path, root, StageRunner(root, set(force)), progress)
        for plan in STAGE_PLANS:
            stage = plan(run)
            if stage is not None:
                run.runner.run(stage)
        deploy_result = deploy_step(run)
        app_after = _app_after(run, deploy_result)
        if app_after is not None:
            run.runner.run(app_after)
        seconds = time.perf_counter() - started
        report = build_report(run, deploy_result, seconds)
        report_json = root / "report.json"
        write_json_atomic(report_json, report)

        report_html = write_html_report(report, root / "report.html")
    return PipelineResult(root, report_json, report_html, list(run.runner.records.values()), report["ladder"],
                          report["budget_failures"], seconds)


def _check_inputs(config: PipelineConfig) -> None:
    """The photo folders, pairs file and weights exist: fail before any work."""
    data_dir = config.evaluate.data or config.prepare.images
    for what, path in (("prepare.images", config.prepare.images), ("evaluate.data", data_dir)):
        if not Path(path).is_dir():
            raise InputError(f"{what}: image folder not found: {path}",
                             hint="fix the path in the pipeline config (paths are relative to the config file)")
    if not Path(config.evaluate.pairs).is_file():
        raise InputError(f"evaluate.pairs: pairs file not found: {config.evaluate.pairs}")
    if config.weights is not None and not Path(config.weights).is_file():
        raise InputError(f"weights: file not found: {config.weights}")


def deploy_step(run: RunContext) -> dict[str, Any] | None:
    """The optional deploy; never cached: the app checkout may have changed since the last run."""
    d = run.config.deploy
    if d is None:
        return None

    app_dir = _fresh_app_copy(d.app, run.root / "app") if d.copy_to_run else d.app
    parity = (run.result("parity") or {}).get(d.variant)
    res = deploy(run.path("export", "out_dir"), app_dir, variant=d.variant,
                 threshold=None if d.threshold == "keep" else d.threshold, far=d.far or run.config.evaluate.far,
                 dry_run=d.dry_run, verify_runtime=d.verify_runtime, keep_app_preprocessing=d.keep_app_preprocessing,
                 app_code=None if d.keep_app_preprocessing else d.app_code, force=d.force,
                 parity_passed=None if parity is None else bool(parity.get("passed")))
    result = to_plain(res)
    result["compatibility_text"] = res.compatibility.describe()
    result["far"] = d.far or run.config.evaluate.far
    return to_run_relative(result, run.root)


def _app_after(run: RunContext, deploy_result: dict[str, Any] | None):
    """The "app after deploy" rung's stage, when the deploy patched the app's code (else None)."""
    d = run.config.deploy
    if d is None or deploy_result is None or not d.app_rungs or d.dry_run:
        return None
    if (deploy_result.get("preprocessing") or {}).get("mode") != "patch":
        return None  # kit and none leave the app's own crop in place: nothing new to measure

    app_dir = Path(deploy_result["app_dir"])  # run-relative when the app copy is in the run folder
    return app_after_stage(run, app_dir if app_dir.is_absolute() else run.root / app_dir)


def build_report(run: RunContext, deploy_result: dict[str, Any] | None, seconds: float) -> dict[str, Any]:
    """report.json's content, every path inside the run folder relative to it."""
    c, records = run.config, run.runner.records
    ladder = run.result("evaluate")["ladder"] + ((run.result("app_after") or {}).get("ladder") or [])
    checks = budget_checks(c.budget, ladder, run.result("parity"), c.deploy)
    failures = [check["failure"] for check in checks if check["passed"] is False]
    report = {
        "format": "ftk.pipeline-report/1",
        "created_at": _now(),
        "ftk_version": __version__,
        "config_path": str(run.config_path.resolve()),
        "config": dump_config(c),
        "run_dir": str(run.root),
        "passed": not failures,
        "budget": dataclasses.asdict(c.budget),
        "budget_checks": checks,
        "budget_failures": failures,
        "stages": [{"name": r.name, "cached": r.cached, "seconds": round(r.seconds, 2), "key": r.key[:16]}
                   for r in records.values()],
        **{name: run.result(name) for name in ("prepare", "train", "select", "export")},
        "ladder": ladder,
        "parity": run.result("parity"),
        "bench": run.result("bench"),
        "deploy": deploy_result,
        "versions": tool_versions(),
        "inputs": {"weights_sha256": sha256_file(c.weights) if c.weights else None,
                   "images_fingerprint": run.runner.hasher.folder(Path(c.prepare.images))[:16],
                   "pairs_sha256": sha256_file(c.evaluate.pairs)},
        "wall_seconds": round(seconds, 1),
    }
    return to_run_relative(report, run.root)


def budget_checks(budget: BudgetSection, ladder: list[dict[str, Any]], parity: dict[str, Any] | None,
                  deploy: DeploySection | None = None) -> list[dict[str, Any]]:
    """Each budget line as the report shows it: what, its limit, the measured value, passed (None: not measured or
    not required, which fails nothing) and, when it failed, the one-line failure."""
    by_model = {row["model"]: row for row in ladder}
    checks = []
    if deploy is not None:
        variant = deploy.variant
        checks.append(_drop_check(f"accuracy the app after deploy loses vs tflite {variant}",
                                  by_model.get(f"tflite {variant}"), by_model.get(f"app after deploy ({variant})"),
                                  budget.max_app_after_drop, "budget.max_app_after_drop",
                                  f"the app after deploy loses {{drop:.2f}} points vs tflite {variant}"))
    checks.append(_drop_check("verification accuracy int8 loses vs float32", by_model.get("tflite float32"),
                              by_model.get("tflite int8"), budget.max_int8_accuracy_drop,
                              "budget.max_int8_accuracy_drop",
                              "int8 loses {drop:.2f} points of verification accuracy vs float32"))
    for precision, rep in (parity or {}).items():
        verdict = "pass" if rep.get("passed") else "fail: " + "; ".join(rep.get("failures", []))
        failed = budget.require_parity and not rep.get("passed")
        checks.append({"check": f"parity {precision} (TFLite vs PyTorch within tolerance)",
                       "limit": "must pass (budget.require_parity)" if budget.require_parity
                       else "not required (budget.require_parity: false)",
                       "value": verdict, "passed": (not failed) if budget.require_parity else None,
                       "failure": f"parity {precision} failed: {'; '.join(rep.get('failures', []))}" if failed
                       else None})
    return checks


def _drop_check(what: str, reference: dict[str, Any] | None, measured: dict[str, Any] | None, limit: float,
                key: str, failure: str) -> dict[str, Any]:
    """A budget line on the accuracy points ``measured`` loses vs ``reference`` (not measured: a row is missing)."""
    check: dict[str, Any] = {"check": what, "limit": f"<= {limit:g} points ({key})", "value": "not measured",
                             "passed": None, "failure": None}
    if not (reference and measured and "accuracy_mean" in reference and "accuracy_mean" in measured):
        return check
    drop = 100 * (reference["accuracy_mean"] - measured["accuracy_mean"])
    check.update(value=f"{drop:.2f} points ({100 * reference['accuracy_mean']:.2f} -> "
                       f"{100 * measured['accuracy_mean']:.2f} %)", passed=drop <= limit)
    if not check["passed"]:
        check["failure"] = failure.format(drop=drop) + f" (budget {limit})"
    return check


def budget_failures(budget: BudgetSection, ladder: list[dict[str, Any]], parity: dict[str, Any] | None,
                    deploy: DeploySection | None = None) -> list[str]:
    return [c["failure"] for c in budget_checks(budget, ladder, parity, deploy) if c["passed"] is False]


def _fresh_app_copy(source: Path, target: Path) -> Path:
    """A pristine, writable copy of the app at ``target`` (replacing an earlier run's copy; the source may be
    read-only, as ../shared is)."""
    import shutil

    if not Path(source).is_dir():
        raise InputError(f"deploy.app: app folder not found: {source}")
    if target.exists():
        shutil.rmtree(target)
    return copy_writable(source, target)


def raise_on_budget(result: PipelineResult) -> None:
    if result.budget_failures:
        raise CheckFailed("pipeline budget failed: " + "; ".join(result.budget_failures),
                          hint=f"see {result.report_html}")
