"""``ftk pipeline``: photo folder -> prepared faces -> (fine-tuned) checkpoint -> float32 + int8 TFLite -> the
accuracy ladder -> parity -> host bench -> (optional) deploy, from one YAML, with one report.

Every stage is one library function (the same ones the CLI commands wrap). Each stage writes into its own folder of
the run directory with a ``stage.json`` holding a key: the sha256 of the stage's settings and of the keys of the
stages it reads from (plus a fingerprint of input files). Re-running with the same key skips the stage, so an
interrupted run resumes and a change redoes only what depends on it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from toolkit import __version__
from toolkit.config import dump_config, from_dict, load_config, to_plain
from toolkit.constants import DEFAULT_CALIBRATION_FACES, DEFAULT_FAR
from toolkit.errors import CheckFailed, ConfigError, DependencyError, InputError
from toolkit.io import ensure_writable_dir, read_json, sha256_file, sha256_text, write_json_atomic

log = logging.getLogger(__name__)

STAGE_FILE = "stage.json"
STAGES = ("prepare", "base", "train", "select", "export", "evaluate", "parity", "bench")


# --- the config ------------------------------------------------------------------------------------------------------
@dataclass
class PrepareSection:
    images: Path  # Person_Name/*.jpg
    min_images_per_person: int = 20
    split: str = "0.8,0.1,0.1"
    seed: int = 0
    contact_sheet: int = 36


@dataclass
class EvaluateSection:
    pairs: Path  # LFW-protocol pairs file (pairsDevTest.txt for development, pairs.txt for the 10-fold protocol)
    data: Path | None = None  # the images the pairs refer to (default: prepare.images)
    far: float = DEFAULT_FAR  # the FAR at which the recommended threshold is chosen
    limit_pairs: int | None = None
    pytorch_baseline: bool = True  # also evaluate the starting weights, so the report shows what training changed
    # Drop the identities named in the pairs file from training, so verification is on people never trained on.
    leak_free: bool = True
    # Development pairs (identities disjoint from `pairs`) on which the pipeline chooses what it ships: the start
    # or the fine-tuned model, whichever verifies better there. Never chosen on `pairs` itself. null: ship the
    # fine-tuned model.
    select_pairs: Path | None = None
    select_limit_pairs: int | None = 600


@dataclass
class ExportSection:
    quantize: bool = True  # also export full-integer int8 (PT2E, per-channel)
    calibration_limit: int = DEFAULT_CALIBRATION_FACES


@dataclass
class ParitySection:
    limit: int = 64


@dataclass
class BenchSection:
    enabled: bool = True
    threads: list[int] = field(default_factory=lambda: [1])
    runs: int = 30
    warmup: int = 3
    pytorch_baseline: bool = True


@dataclass
class DeploySection:
    app: Path
    variant: Literal["int8", "float32", "float16"] = "int8"
    threshold: Literal["auto", "keep"] | float = "auto"
    dry_run: bool = False
    # Deploy into <run>/app, a fresh copy of `app` made on every run (the example: the app ftk ships for tests).
    copy_to_run: bool = False
    keep_app_preprocessing: bool = False
    verify_runtime: bool = False  # run the model on the app's TensorFlow Lite version first (a cached venv)
    # The two app rungs on the ladder: the app's own crop (simulated) and the generated Kotlin crop on the JVM.
    app_rungs: bool = True


@dataclass
class BudgetSection:
    # Fail (exit 1) when the int8 export loses more than this many points of verification accuracy vs float32.
    max_int8_accuracy_drop: float = 0.5
    # Fail when any parity check fails.
    require_parity: bool = True
    # Fail when the app after deploy (its crops by the generated Kotlin) loses more than this many points vs the
    # deployed artifact's own rung.
    max_app_after_drop: float = 0.3


@dataclass
class PipelineConfig:
    prepare: PrepareSection
    evaluate: EvaluateSection
    backbone: str = "mobilefacenet"
    weights: Path | None = None  # local pretrained state_dict for the backbone (offline)
    # TrainConfig keys (epochs, lr, batch_size, ...): the pipeline fills in data, backbone, weights and out_dir.
    # null: no training, the pretrained weights are exported as they are.
    train: dict[str, Any] | None = None
    export: ExportSection = field(default_factory=ExportSection)
    parity: ParitySection = field(default_factory=ParitySection)
    bench: BenchSection = field(default_factory=BenchSection)
    deploy: DeploySection | None = None
    budget: BudgetSection = field(default_factory=BudgetSection)


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    config = load_config(path, PipelineConfig)
    from toolkit.models.registry import get_backbone_info

    get_backbone_info(config.backbone)  # unknown backbone: fail before any work
    if config.train is not None:
        _train_config(config, Path(path).resolve().parent, Path("/nonexistent/faces.csv"), Path("/nonexistent"))
    if config.evaluate.select_pairs is not None:
        check_selection_pairs(config.evaluate.select_pairs, config.evaluate.pairs)
    return config


def check_selection_pairs(select: Path, test: Path) -> None:
    """The pairs that choose the shipped model must not share a person with the pairs that measure it."""
    from toolkit.data.pairs import read_pairs

    for what, path in (("evaluate.select_pairs", select), ("evaluate.pairs", test)):
        if not Path(path).is_file():
            raise ConfigError(f"{what}: pairs file not found: {path}")
    shared = read_pairs(select).identities() & read_pairs(test).identities()
    if shared:
        raise ConfigError(f"evaluate.select_pairs shares {len(shared)} identities with evaluate.pairs (e.g. "
                          f"{sorted(shared)[0]}): choosing the shipped model there would leak the test into it",
                          hint="use pairsDevTrain.txt to choose and pairsDevTest.txt to measure (LFW View 1)")


def choose_shipped(start: dict[str, Any], tuned: dict[str, Any]) -> tuple[str, str]:
    """("start" | "fine-tuned", why): the fine-tuned model ships only when it verifies strictly better."""
    a, b = start["accuracy_mean"], tuned["accuracy_mean"]
    if b > a:
        return "fine-tuned", f"fine-tuning raised accuracy on the selection pairs from {a:.2%} to {b:.2%}"
    return "start", (f"fine-tuning did not help on the selection pairs ({a:.2%} before, {b:.2%} after): the "
                     "starting weights ship")


def _train_config(config: PipelineConfig, base_dir: Path, faces_csv: Path, out_dir: Path):
    from toolkit.train import TrainConfig

    reserved = {"data", "backbone", "weights", "out_dir", "pretrained", "init_checkpoint"}
    clash = reserved & set(config.train or {})
    if clash:
        raise ConfigError(f"train: {', '.join(sorted(clash))} are set by the pipeline (use the top-level keys)")
    data: dict[str, Any] = {"faces_csv": str(faces_csv)}
    if config.evaluate.leak_free:
        data["exclude_identities_from"] = str(config.evaluate.pairs)
    for key in ("min_images_per_person", "max_images_per_person", "crop"):
        if key in (config.train or {}):
            data[key] = config.train[key]
    train = {k: v for k, v in (config.train or {}).items()
             if k not in ("min_images_per_person", "max_images_per_person", "crop")}
    values = {**train, "data": data, "backbone": config.backbone, "out_dir": str(out_dir)}
    if config.weights is not None:
        values["weights"] = str(config.weights)
    return from_dict(TrainConfig, values, base_dir=base_dir, where="pipeline config, train section")


# --- stages ----------------------------------------------------------------------------------------------------------
@dataclass
class StageRecord:
    name: str
    key: str
    cached: bool
    seconds: float
    result: dict[str, Any]


def folder_fingerprint(root: Path) -> str:
    """Cheap content identity of an image folder: relative paths, sizes and mtimes (stat only, no reads)."""
    parts = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            parts.append(f"{path.relative_to(root)}|{st.st_size}|{int(st.st_mtime)}")
    return sha256_text("\n".join(parts))


def file_fingerprint(path: Path | None) -> str | None:
    return None if path is None else sha256_file(path)


class StageRunner:
    """Runs stages in order; skips a stage whose folder holds a stage.json with the same key."""

    def __init__(self, run_dir: Path, force: set[str] | None = None):
        import difflib

        for name in sorted(force or ()):
            if name not in STAGES:
                close = difflib.get_close_matches(name, STAGES, n=1)
                raise InputError(f"--force {name}: no such stage" + (f" (did you mean {close[0]!r}?)" if close else ""),
                                 hint=f"stages: {', '.join(STAGES)}")
        self.run_dir = run_dir
        self.force = force or set()
        self.records: dict[str, StageRecord] = {}

    def stage_dir(self, name: str) -> Path:
        return self.run_dir / name

    def run(self, name: str, inputs: dict[str, Any], fn: Callable[[Path], dict[str, Any]]) -> StageRecord:
        key = sha256_text(json.dumps(inputs, sort_keys=True, default=str))
        folder = self.stage_dir(name)
        marker = folder / STAGE_FILE
        if name not in self.force and marker.is_file():
            try:
                saved = read_json(marker, "stage record")
            except InputError:
                saved = {}
            missing = _missing_outputs(saved.get("result", {}), folder)
            if missing:
                log.info("stage %s: %s is gone, running it again", name, missing[0])
            elif saved.get("key") == key:
                log.info("stage %s: up to date (cached)", name)
                record = StageRecord(name, key, True, float(saved.get("seconds", 0.0)), saved.get("result", {}))
                self.records[name] = record
                return record
        log.info("stage %s: running", name)
        ensure_writable_dir(folder)
        started = time.perf_counter()
        result = fn(folder)
        seconds = time.perf_counter() - started
        # Written last: a stage interrupted before this line is redone on the next run.
        write_json_atomic(marker, {"key": key, "inputs": inputs, "seconds": seconds, "result": result,
                                   "finished_at": _now()})
        record = StageRecord(name, key, False, seconds, result)
        self.records[name] = record
        return record


def _missing_outputs(result: Any, folder: Path) -> list[str]:
    """Paths inside the stage folder that the stage's result names but that no longer exist."""
    if isinstance(result, dict):
        return [m for v in result.values() for m in _missing_outputs(v, folder)]
    if isinstance(result, list):
        return [m for v in result for m in _missing_outputs(v, folder)]
    if isinstance(result, str) and result.startswith(str(folder) + os.sep) and not Path(result).exists():
        return [result]
    return []


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class PipelineResult:
    run_dir: Path
    report_json: Path
    report_html: Path
    stages: list[StageRecord]
    ladder: list[dict[str, Any]]
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
    base_dir = config_path.resolve().parent
    # Absolute: stage results hold paths that are later read relative to the config file's folder.
    run_dir = ensure_writable_dir(Path(run_dir).resolve())
    started = time.perf_counter()
    runner = StageRunner(run_dir, set(force))
    cfg = dump_config(config)
    data_dir = config.evaluate.data or config.prepare.images
    for what, path in (("prepare.images", config.prepare.images), ("evaluate.data", data_dir)):
        if not Path(path).is_dir():
            raise InputError(f"{what}: image folder not found: {path}",
                             hint="fix the path in the pipeline config (paths are relative to the config file)")
    if not Path(config.evaluate.pairs).is_file():
        raise InputError(f"evaluate.pairs: pairs file not found: {config.evaluate.pairs}")
    if config.weights is not None and not Path(config.weights).is_file():
        raise InputError(f"weights: file not found: {config.weights}")

    # 1. prepare
    def do_prepare(folder: Path) -> dict[str, Any]:
        from toolkit.prepare import prepare

        p = config.prepare
        res = prepare(p.images, folder / "faces.csv", min_images_per_person=p.min_images_per_person, split=p.split,
                      seed=p.seed, contact_sheet=p.contact_sheet, overwrite=True, progress=progress)
        return to_plain(res)

    prep = runner.run("prepare", {"cfg": cfg["prepare"], "images": folder_fingerprint(Path(config.prepare.images))},
                      do_prepare)
    faces_csv = Path(prep.result["csv_path"])

    # 2. starting checkpoint (the pretrained weights as they are) and 3. training
    weights_hash = file_fingerprint(config.weights)

    def do_base(folder: Path) -> dict[str, Any]:
        from toolkit.init_checkpoint import init_checkpoint

        res = init_checkpoint(folder / "base.pt", backbone=config.backbone, weights=config.weights,
                              calibration=None if config.weights else faces_csv, overwrite=True, progress=progress)
        return to_plain(res)

    base = runner.run("base", {"backbone": config.backbone, "weights": weights_hash,
                               "prepare": prep.key if config.weights is None else None}, do_base)
    checkpoint = Path(base.result["path"])
    train_rec = None
    if config.train is not None:
        def do_train(folder: Path) -> dict[str, Any]:
            from toolkit.train import train

            tcfg = _train_config(config, base_dir, faces_csv, folder)
            resume = (folder / "last.pt").is_file()
            res = train(tcfg, config_path=config_path, resume=resume, overwrite=not resume, progress=progress)
            return to_plain(res)

        # Leak-free training drops the identities of the pairs file: its content is an input of this stage.
        excluded = sha256_file(config.evaluate.pairs) if config.evaluate.leak_free else None
        train_rec = runner.run("train", {"cfg": cfg["train"], "prepare": prep.key, "weights": weights_hash,
                                         "backbone": config.backbone, "leak_free_pairs": excluded}, do_train)
        checkpoint = Path(train_rec.result.get("best_checkpoint") or train_rec.result["last_checkpoint"])

    # 3b. choose what ships: the start or the fine-tuned model, on pairs disjoint from the test pairs
    select_rec, fine_tuned = None, checkpoint
    if train_rec is not None and config.evaluate.select_pairs is not None:
        def do_select(folder: Path) -> dict[str, Any]:
            from toolkit.evaluate import evaluate_model_file

            e = config.evaluate
            rows = {label: _ladder_row(label, path, evaluate_model_file(
                        path, pairs=e.select_pairs, data=data_dir, far=e.far, limit_pairs=e.select_limit_pairs,
                        out_dir=folder / label, overwrite=True, progress=progress))
                    for label, path in (("start", Path(base.result["path"])), ("fine-tuned", fine_tuned))}
            shipped, reason = choose_shipped(rows["start"], rows["fine-tuned"])
            return {"shipped": shipped, "shipped_path": rows[shipped]["path"], "reason": reason,
                    "pairs": str(e.select_pairs), "rows": list(rows.values())}

        select_rec = runner.run("select", {"train": train_rec.key, "base": base.key,
                                           "pairs": sha256_file(config.evaluate.select_pairs),
                                           "limit": config.evaluate.select_limit_pairs,
                                           "data": folder_fingerprint(Path(data_dir))}, do_select)
        checkpoint = Path(select_rec.result["shipped_path"])
        log.info("shipping the %s model: %s", select_rec.result["shipped"], select_rec.result["reason"])

    # 4. export
    def do_export(folder: Path) -> dict[str, Any]:
        from toolkit.export import export_model

        res = export_model(checkpoint, folder, quantize="int8" if config.export.quantize else None,
                           calibration=faces_csv, calibration_limit=config.export.calibration_limit,
                           overwrite=True, progress=progress)
        return res.summary()

    upstream = select_rec.key if select_rec else train_rec.key if train_rec else base.key
    exp = runner.run("export", {"cfg": cfg["export"], "checkpoint": upstream, "prepare": prep.key}, do_export)
    artifacts = {p: Path(a["path"]) for p, a in exp.result["artifacts"].items()}

    # 5. evaluate: the accuracy ladder, one code path over every embedder
    ladder_models: list[tuple[str, Path]] = []
    if config.evaluate.pytorch_baseline and train_rec is not None:
        ladder_models.append(("pytorch (start)", Path(base.result["path"])))
    if checkpoint != fine_tuned:
        ladder_models.append(("pytorch (fine-tuned, not shipped)", fine_tuned))
    ladder_models.append(("pytorch", checkpoint))
    for precision in ("float32", "int8"):
        if precision in artifacts:
            ladder_models.append((f"tflite {precision}", artifacts[precision]))

    # Classification accuracy needs a head and a test split.
    classify_csv = faces_csv if (prep.result.get("split_counts") or {}).get("test") else None

    # The app rungs: the deployed artifact with the app's crops, before and after ftk deploy.
    from toolkit.deploy.kotlin import template_fingerprint

    app_rungs = []
    if config.deploy is not None and config.deploy.app_rungs and config.deploy.variant in artifacts:
        app_rungs = [(f"app {mode} deploy ({config.deploy.variant})", artifacts[config.deploy.variant], mode)
                     for mode in ("before", "after")]

    def do_evaluate(folder: Path) -> dict[str, Any]:
        from toolkit.evaluate import evaluate_model_file

        rows = []
        for label, model_path, simulate_app in [(l, p, None) for l, p in ladder_models] + app_rungs:
            # TFLite reports go beside the model (<stem>.eval/) so `ftk deploy --threshold auto` finds them.
            out = None if model_path.suffix == ".tflite" else folder / label.replace(" ", "_").replace("(", "").replace(")", "")
            try:
                res = evaluate_model_file(model_path, pairs=config.evaluate.pairs, data=data_dir,
                                          csv=None if simulate_app else classify_csv, far=config.evaluate.far,
                                          limit_pairs=config.evaluate.limit_pairs, out_dir=out, overwrite=True,
                                          progress=progress, simulate_app=simulate_app)
            except DependencyError as exc:  # no kotlinc: the app-after rung is reported as not measured
                rows.append({"model": label, "path": str(model_path), "skipped": str(exc)})
                continue
            rows.append(_ladder_row(label, model_path, res))
        return {"ladder": rows}

    ev = runner.run("evaluate", {"cfg": cfg["evaluate"], "export": exp.key, "checkpoint": upstream,
                                 "prepare": prep.key, "pairs": sha256_file(config.evaluate.pairs),
                                 "data": folder_fingerprint(Path(data_dir)), "app_rungs": [r[0] for r in app_rungs],
                                 "kotlin": template_fingerprint() if app_rungs else None}, do_evaluate)

    # 6. parity
    # Decisions are compared at the threshold the app will use: the one calibrated for the float model.
    calibrated = next((row.get("threshold") for row in ev.result["ladder"] if row["model"] == "pytorch"), None)

    def do_parity(folder: Path) -> dict[str, Any]:
        from toolkit.parity import parity_check

        out = {}
        for precision, path in artifacts.items():
            rep = parity_check(path, checkpoint, images=faces_csv, limit=config.parity.limit, threshold=calibrated,
                               progress=progress)
            write_json_atomic(folder / f"parity_{precision}.json", rep.to_dict())
            out[precision] = rep.to_dict()
        return out

    par = runner.run("parity", {"cfg": cfg["parity"], "export": exp.key, "prepare": prep.key,
                                "threshold": calibrated}, do_parity)

    # 7. bench
    bench_rec = None
    if config.bench.enabled:
        def do_bench(folder: Path) -> dict[str, Any]:
            from toolkit.bench import run_bench

            b = config.bench
            res = run_bench(list(artifacts.values()), device="host", threads=b.threads, warmup=b.warmup, runs=b.runs,
                            checkpoint=checkpoint if b.pytorch_baseline else None, out_dir=folder,
                            plot_path=folder / "latency.png", overwrite=True, progress=progress)
            return res.to_dict(with_samples=False)

        bench_rec = runner.run("bench", {"cfg": cfg["bench"], "export": exp.key}, do_bench)

    # 8. deploy (optional); never cached: the app checkout may have changed since
    deploy_result = None
    if config.deploy is not None:
        from toolkit.deploy import deploy

        d = config.deploy
        threshold = None if d.threshold == "keep" else d.threshold
        app_dir = _fresh_app_copy(d.app, run_dir / "app") if d.copy_to_run else d.app
        res = deploy(exp.result["out_dir"], app_dir, variant=d.variant, threshold=threshold, far=config.evaluate.far,
                     dry_run=d.dry_run, verify_runtime=d.verify_runtime,
                     keep_app_preprocessing=d.keep_app_preprocessing)
        deploy_result = to_plain(res)
        deploy_result["compatibility_text"] = res.compatibility.describe()

    # report
    from toolkit.export import tool_versions

    ladder = ev.result["ladder"]
    failures = budget_failures(config.budget, ladder, par.result, config.deploy)
    seconds = time.perf_counter() - started
    report = {
        "format": "ftk.pipeline-report/1",
        "created_at": _now(),
        "ftk_version": __version__,
        "config_path": str(config_path.resolve()),
        "config": cfg,
        "run_dir": str(run_dir.resolve()),
        "passed": not failures,
        "budget": dataclasses.asdict(config.budget),
        "budget_failures": failures,
        "stages": [{"name": r.name, "cached": r.cached, "seconds": round(r.seconds, 2), "key": r.key[:16]}
                   for r in runner.records.values()],
        "prepare": prep.result,
        "train": train_rec.result if train_rec else None,
        "select": select_rec.result if select_rec else None,
        "export": exp.result,
        "ladder": ladder,
        "parity": par.result,
        "bench": bench_rec.result if bench_rec else None,
        "deploy": deploy_result,
        "versions": tool_versions(),
        "inputs": {"weights_sha256": weights_hash, "images_fingerprint": runner.records["prepare"].key[:16],
                   "pairs_sha256": sha256_file(config.evaluate.pairs)},
        "wall_seconds": round(seconds, 1),
    }
    report_json = run_dir / "report.json"
    write_json_atomic(report_json, report)
    from toolkit.html_report import write_html_report

    report_html = write_html_report(report, run_dir / "report.html")
    return PipelineResult(run_dir, report_json, report_html, list(runner.records.values()), ladder, failures, seconds)


def _ladder_row(label: str, model_path: Path, res: Any) -> dict[str, Any]:
    v = res.verification
    row: dict[str, Any] = {"model": label, "path": str(model_path), "sha256": res.model_sha256,
                           "report": str(res.report_path) if res.report_path else None,
                           "roc_png": str(res.roc_path) if res.roc_path else None,
                           "scores_png": str(res.histogram_path) if res.histogram_path else None}
    if v is not None:
        row.update({"accuracy_mean": v.accuracy_mean, "accuracy_std": v.accuracy_std, "auc": v.auc, "eer": v.eer,
                    "tar_at_far": v.tar_at_far, "threshold": v.threshold, "far": v.far, "n_pairs": v.n_pairs,
                    "roc_points": v.roc_points})
    if res.classification is not None:
        row["classification_accuracy"] = res.classification.accuracy
    return row


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
