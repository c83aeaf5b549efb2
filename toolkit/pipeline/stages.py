"""The stages: each plan declares what it reads and returns what it wrote."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable

from toolkit.app_sim import app_eval_dir
from toolkit.bench import run_bench
from toolkit.config import to_plain
from toolkit.constants import PARITY_SAMPLE_NAME
from toolkit.deploy.app_runner import app_build_fingerprint
from toolkit.errors import DependencyError
from toolkit.evaluate import evaluate_model_file
from toolkit.export import export_model
from toolkit.init_checkpoint import init_checkpoint
from toolkit.io import write_json_atomic
from toolkit.parity import parity_check
from toolkit.pipeline.config import _train_config, choose_shipped
from toolkit.pipeline.runner import FileInput, FolderInput, RunContext, Stage, StageOutput, _file, to_run_relative
from toolkit.prepare import prepare
from toolkit.reports import default_eval_dir
from toolkit.train import train

log = logging.getLogger("toolkit.pipeline")  # one logger for the pipeline: log lines keep the name they always had


def _settings(section: Any, *paths: str) -> dict[str, Any]:
    """A config section's values without its path fields (those enter a key by content, as inputs)."""
    return {k: v for k, v in to_plain(section).items() if k not in paths}


def prepare_stage(run: RunContext) -> Stage:
    p = run.config.prepare

    def work(folder: Path) -> StageOutput:
        res = prepare(p.images, folder / "faces.csv", min_images_per_person=p.min_images_per_person, split=p.split,
                      seed=p.seed, contact_sheet=p.contact_sheet, overwrite=True, progress=run.progress)
        files = [res.csv_path, res.labels_path, res.rejects_path, res.contact_sheet_path]
        return StageOutput(to_plain(res), [f for f in files if f])

    return Stage("prepare", {**_settings(p, "images"), "images": FolderInput(Path(p.images))}, work)


def base_stage(run: RunContext) -> Stage:
    """The starting checkpoint: the pretrained weights as they are, or random init with BatchNorm set on the faces."""
    c = run.config
    calibration = None if c.weights else run.faces_csv

    def work(folder: Path) -> StageOutput:
        res = init_checkpoint(folder / "base.pt", backbone=c.backbone, weights=c.weights, calibration=calibration,
                              overwrite=True, progress=run.progress)
        return StageOutput(to_plain(res), [res.path])

    return Stage("base", {"backbone": c.backbone, "weights": _file(c.weights),
                          "faces": run.faces() if calibration else None}, work)


def train_stage(run: RunContext) -> Stage | None:
    c = run.config
    if c.train is None:
        return None
    faces_csv = run.faces_csv

    def work(folder: Path) -> StageOutput:
        tcfg = _train_config(c, run.config_path.resolve().parent, faces_csv, folder)
        resume = (folder / "last.pt").is_file()
        res = train(tcfg, config_path=run.config_path, resume=resume, overwrite=not resume, progress=run.progress)
        files = [res.best_checkpoint, res.last_checkpoint, res.results_csv]
        return StageOutput(to_plain(res), [f for f in files if f])

    # Leak-free training drops the identities of the pairs file: its content is an input of this stage.
    excluded = FileInput(Path(c.evaluate.pairs)) if c.evaluate.leak_free else None
    return Stage("train", {"train": c.train, "backbone": c.backbone, "weights": _file(c.weights),
                           "faces": run.faces(), "leak_free_pairs": excluded}, work)


def select_stage(run: RunContext) -> Stage | None:
    """What ships, the start or the fine-tuned model, chosen on pairs disjoint from the test pairs."""
    e = run.config.evaluate
    if run.fine_tuned is None or e.select_pairs is None:
        return None
    candidates = {"start": run.start, "fine-tuned": run.fine_tuned}

    def work(folder: Path) -> StageOutput:
        rows = {label: _ladder_row(label, path, evaluate_model_file(
                    path, pairs=e.select_pairs, data=run.data_dir, far=e.far, limit_pairs=e.select_limit_pairs,
                    out_dir=folder / label, overwrite=True, progress=run.progress))
                for label, path in candidates.items()}
        shipped, reason = choose_shipped(rows["start"], rows["fine-tuned"])
        return StageOutput({"shipped": shipped, "shipped_path": rows[shipped]["path"], "reason": reason,
                            "pairs": str(e.select_pairs), "rows": list(rows.values())}, _row_files(rows.values()))

    return Stage("select", {"models": {k: FileInput(v) for k, v in candidates.items()},
                            "pairs": FileInput(Path(e.select_pairs)), "limit": e.select_limit_pairs, "far": e.far,
                            "data": FolderInput(run.data_dir)}, work)


def export_stage(run: RunContext) -> Stage:
    c = run.config
    checkpoint, faces_csv = run.shipped, run.faces_csv
    select = run.result("select")
    if select is not None:
        log.info("shipping the %s model: %s", select["shipped"], select["reason"])

    def work(folder: Path) -> StageOutput:
        res = export_model(checkpoint, folder, quantize="int8" if c.export.quantize else None,
                           calibration=faces_csv, calibration_limit=c.export.calibration_limit,
                           parity_faces=c.export.parity_faces, overwrite=True, progress=run.progress)
        summary = res.summary()
        files = [a["path"] for a in summary["artifacts"].values()] + [summary.get("manifest")]
        if "parity_sample" in res.manifest:  # the faces calibration did not see: the parity stage uses them
            files.append(str(folder / PARITY_SAMPLE_NAME))
        return StageOutput(summary, [f for f in files if f])

    return Stage("export", {**_settings(c.export), "checkpoint": FileInput(checkpoint), "faces": run.faces()}, work)


def evaluate_stage(run: RunContext) -> Stage:
    """The accuracy ladder: the same pairs through every embedder, one code path (the app after deploy comes
    later: :func:`app_after_stage` measures the patched app's own code)."""
    e = run.config.evaluate
    rungs = _ladder_models(run) + _app_rungs(run)
    # Classification accuracy needs a head and a test split.
    classify = run.faces_csv if (run.result("prepare").get("split_counts") or {}).get("test") else None

    def work(folder: Path) -> StageOutput:
        rows = [_evaluate_rung(run, label, path, mode, classify, folder) for label, path, mode in rungs]
        return StageOutput({"ladder": rows}, _row_files(rows))

    return Stage("evaluate", {"pairs": FileInput(Path(e.pairs)), "data": FolderInput(run.data_dir), "far": e.far,
                              "limit_pairs": e.limit_pairs,
                              "rungs": [[label, FileInput(path), mode] for label, path, mode in rungs],
                              "classify_faces": run.faces() if classify else None}, work)


def parity_stage(run: RunContext) -> Stage:
    """torch vs LiteRT on the faces the export held out of calibration (else the prepared faces)."""
    checkpoint, faces_csv, artifacts, limit = run.shipped, run.faces_csv, run.artifacts, run.config.parity.limit
    sample = next(iter(artifacts.values())).with_name(PARITY_SAMPLE_NAME) if artifacts else None
    held_out = sample is not None and sample.is_file()
    # Decisions are compared at the threshold the app will use: the one calibrated for the float model.
    shipped = shipped_label(run)
    threshold = next((row.get("threshold") for row in run.result("evaluate")["ladder"] if row["model"] == shipped),
                     None)

    def work(folder: Path) -> StageOutput:
        out, files = {}, []
        for precision, path in artifacts.items():
            out[precision] = parity_check(path, checkpoint, images=None if held_out else faces_csv, limit=limit,
                                          threshold=threshold, progress=run.progress).to_dict()
            files.append(folder / f"parity_{precision}.json")
            write_json_atomic(files[-1], to_run_relative(out[precision], run.root))
        return StageOutput(out, files)

    return Stage("parity", {"limit": limit, "threshold": threshold, "checkpoint": FileInput(checkpoint),
                            "models": {p: FileInput(a) for p, a in artifacts.items()},
                            "faces": FileInput(sample) if held_out else run.faces()}, work)


def bench_stage(run: RunContext) -> Stage | None:
    b = run.config.bench
    if not b.enabled:
        return None
    models = list(run.artifacts.values())
    baseline = run.shipped if b.pytorch_baseline else None

    def work(folder: Path) -> StageOutput:
        res = run_bench(models, device="host", threads=b.threads, warmup=b.warmup, runs=b.runs, checkpoint=baseline,
                        out_dir=folder, plot_path=folder / "latency.png", overwrite=True, progress=run.progress)
        result = res.to_dict(with_samples=False)
        return StageOutput(result, [f for f in (result.get("outputs") or {}).values() if f])

    return Stage("bench", {**_settings(b), "models": [FileInput(m) for m in models],
                           "checkpoint": _file(baseline)}, work)


# In STAGES order; a plan returns None for a stage the config leaves out.
STAGE_PLANS: tuple[Callable[[RunContext], Stage | None], ...] = (
    prepare_stage, base_stage, train_stage, select_stage, export_stage, evaluate_stage, parity_stage, bench_stage)


def _start_origin(run: RunContext) -> str:
    return "pretrained" if run.config.weights else "random init"


def _ladder_models(run: RunContext) -> list[tuple[str, Path, str | None]]:
    """(label, model, app mode) per PyTorch and TFLite rung. The PyTorch rows say which weights they hold: the start
    (pretrained or random init), the fine-tuned model when it does not ship, and what ships (and what that is)."""
    models: list[tuple[str, Path, str | None]] = []
    start = _start_origin(run)
    if run.fine_tuned is not None:
        if run.config.evaluate.pytorch_baseline:
            models.append((f"pytorch (start: {start})", run.start, None))
        if run.shipped != run.fine_tuned:
            models.append(("pytorch (fine-tuned, not shipped)", run.fine_tuned, None))
    models.append((shipped_label(run), run.shipped, None))
    artifacts = run.artifacts
    return models + [(f"tflite {p}", artifacts[p], None) for p in ("float32", "int8") if p in artifacts]


def shipped_label(run: RunContext) -> str:
    """The ladder's name for the checkpoint the TFLite files are exported from."""
    if run.fine_tuned is None:
        return f"pytorch (shipped: {_start_origin(run)})"
    return "pytorch (shipped: fine-tuned)" if run.shipped == run.fine_tuned else "pytorch (shipped: the start)"


def _app_rungs(run: RunContext) -> list[tuple[str, Path, str | None]]:
    """The deployed artifact with the app's own crop before ftk deploy (simulated)."""
    d, artifacts = run.config.deploy, run.artifacts
    if d is None or not d.app_rungs or d.variant not in artifacts:
        return []
    return [(f"app before deploy ({d.variant})", artifacts[d.variant], "before")]


def app_after_stage(run: RunContext, app_dir: Path) -> Stage:
    """The app after deploy: the deployed file on the pairs, each face cropped by the patched app's OWN code
    (its crop function and input builder, compiled against ftk's Android stubs and run on the JVM)."""
    e, d = run.config.evaluate, run.config.deploy
    model = run.artifacts[d.variant]
    label = f"app after deploy ({d.variant})"

    def work(folder: Path) -> StageOutput:
        row = _evaluate_rung(run, label, model, "after", None, folder, app_dir=app_dir)
        return StageOutput({"ladder": [row]}, _row_files([row]))

    return Stage("app_after", {"pairs": FileInput(Path(e.pairs)), "data": FolderInput(run.data_dir), "far": e.far,
                         "limit_pairs": e.limit_pairs, "model": FileInput(model),
                         "app_code": app_build_fingerprint(app_dir)}, work)


def _evaluate_rung(run: RunContext, label: str, model_path: Path, simulate_app: str | None,
                   classify_csv: Path | None, folder: Path, app_dir: Path | None = None) -> dict[str, Any]:
    e = run.config.evaluate
    if model_path.suffix != ".tflite":
        slug = re.sub(r"[^A-Za-z0-9.-]+", "_", label).strip("_")  # a plain folder name: no comma, colon or space
        out = folder / slug
    else:  # beside the model, inside the run (<stem>.eval/): where `ftk deploy --threshold auto` looks
        out = default_eval_dir(model_path) if simulate_app is None else app_eval_dir(model_path, simulate_app, model_path.parent)
    try:
        res = evaluate_model_file(model_path, pairs=e.pairs, data=run.data_dir,
                                  csv=None if simulate_app else classify_csv, far=e.far, limit_pairs=e.limit_pairs,
                                  out_dir=out, overwrite=True, progress=run.progress, simulate_app=simulate_app,
                                  app_dir=app_dir)
    except DependencyError as exc:  # no kotlinc/javac: the app-after rung is reported as not measured
        return {"model": label, "path": str(model_path), "skipped": str(exc)}
    return _ladder_row(label, model_path, res)


def _row_files(rows: Any) -> list[str]:
    return [row[k] for row in rows for k in ("report", "roc_png", "scores_png") if row.get(k)]


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
        c = res.classification
        row.update({"classification_accuracy": c.accuracy, "classification_faces": c.n_faces,
                    "classification_classes": c.n_classes})
    return row
