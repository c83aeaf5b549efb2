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
from toolkit.errors import CheckFailed, InputError
from toolkit.io import ensure_writable_dir, sha256_file, write_json_atomic
from toolkit.locks import exclusive
from toolkit.pipeline.config import BudgetSection, DeploySection, PipelineConfig, load_pipeline_config
from toolkit.pipeline.runner import RunContext, StageRecord, StageRunner, _now, check_force, to_run_relative
from toolkit.pipeline.stages import STAGE_PLANS


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
        seconds = time.perf_counter() - started
        report = build_report(run, deploy_result, seconds)
        report_json = root / "report.json"
        write_json_atomic(report_json, report)
        from toolkit.html_report import write_html_report

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
    from toolkit.deploy import deploy

    app_dir = _fresh_app_copy(d.app, run.root / "app") if d.copy_to_run else d.app
    res = deploy(run.path("export", "out_dir"), app_dir, variant=d.variant,
                 threshold=None if d.threshold == "keep" else d.threshold, far=run.config.evaluate.far,
                 dry_run=d.dry_run, verify_runtime=d.verify_runtime, keep_app_preprocessing=d.keep_app_preprocessing)
    result = to_plain(res)
    result["compatibility_text"] = res.compatibility.describe()
    return to_run_relative(result, run.root)


def build_report(run: RunContext, deploy_result: dict[str, Any] | None, seconds: float) -> dict[str, Any]:
    """report.json's content, every path inside the run folder relative to it."""
    from toolkit.versions import tool_versions

    c, records = run.config, run.runner.records
    ladder = run.result("evaluate")["ladder"]
    failures = budget_failures(c.budget, ladder, run.result("parity"), c.deploy)
    report = {
        "format": "ftk.pipeline-report/1",
        "created_at": _now(),
        "ftk_version": __version__,
        "config_path": str(run.config_path.resolve()),
        "config": dump_config(c),
        "run_dir": str(run.root),
        "passed": not failures,
        "budget": dataclasses.asdict(c.budget),
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


def budget_failures(budget: BudgetSection, ladder: list[dict[str, Any]], parity: dict[str, Any],
                    deploy: DeploySection | None = None) -> list[str]:
    failures = []
    by_model = {row["model"]: row for row in ladder}
    if deploy is not None:
        shipped = by_model.get(f"tflite {deploy.variant}")
        after = by_model.get(f"app after deploy ({deploy.variant})")
        if shipped and after and "accuracy_mean" in shipped and "accuracy_mean" in after:
            drop = 100 * (shipped["accuracy_mean"] - after["accuracy_mean"])
            if drop > budget.max_app_after_drop:
                failures.append(f"the app after deploy loses {drop:.2f} points vs tflite {deploy.variant} "
                                f"(budget {budget.max_app_after_drop})")
    f32, i8 = by_model.get("tflite float32"), by_model.get("tflite int8")
    if f32 and i8 and "accuracy_mean" in f32 and "accuracy_mean" in i8:
        drop = 100 * (f32["accuracy_mean"] - i8["accuracy_mean"])
        if drop > budget.max_int8_accuracy_drop:
            failures.append(f"int8 loses {drop:.2f} points of verification accuracy vs float32 "
                            f"(budget {budget.max_int8_accuracy_drop})")
    if budget.require_parity:
        for precision, rep in parity.items():
            if not rep.get("passed"):
                failures.append(f"parity {precision} failed: {'; '.join(rep.get('failures', []))}")
    return failures


def _fresh_app_copy(source: Path, target: Path) -> Path:
    """A pristine copy of the example app at ``target`` (replacing an earlier run's copy)."""
    import shutil

    if not Path(source).is_dir():
        raise InputError(f"deploy.app: app folder not found: {source}")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True)
    return target


def raise_on_budget(result: PipelineResult) -> None:
    if result.budget_failures:
        raise CheckFailed("pipeline budget failed: " + "; ".join(result.budget_failures),
                          hint=f"see {result.report_html}")
