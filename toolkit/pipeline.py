"""``ftk pipeline``: photo folder -> prepared faces -> (fine-tuned) checkpoint -> float32 + int8 TFLite -> the
accuracy ladder -> parity -> host bench -> (optional) deploy, from one YAML, with one report.

Every stage is one library function (the same ones the CLI commands wrap), planned by one small function here that
declares what the stage reads: config values and files (:class:`FileInput`, :class:`FolderInput`). The stage's key
is the sha256 of those values and of the files' contents, never their names; the stage writes into its own folder of
the run directory and records the key, its outputs and its result in ``stage.json``. Re-running with the same key
and the outputs still there skips the stage, so an interrupted run resumes and a change redoes only what reads it.

Every path the pipeline records inside the run folder (stage.json, report.json, report.html's links) is relative to
it, so a moved run folder is still up to date; a recorded path that leaves the run folder is refused.
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
from toolkit.constants import DEFAULT_CALIBRATION_FACES, DEFAULT_FAR, PARITY_SAMPLE_NAME
from toolkit.errors import CheckFailed, ConfigError, DependencyError, InputError
from toolkit.io import (ensure_writable_dir, is_relative_inside, read_json, sha256_file, sha256_text,
                        write_json_atomic)
from toolkit.locks import exclusive

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


# --- what a stage reads and writes -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileInput:
    """A file a stage reads: it enters the stage's key by its content (sha256), never by its name."""

    path: Path


@dataclass(frozen=True)
class FolderInput:
    """A folder a stage reads (an image tree): it enters the key by each file's name inside it and content."""

    path: Path


@dataclass
class StageOutput:
    result: dict[str, Any]  # JSON-able; paths inside the run folder are stored relative to it
    files: list[Path]  # what the stage wrote: a cached stage whose files are gone runs again


@dataclass
class Stage:
    name: str
    inputs: dict[str, Any]  # config values, FileInput and FolderInput (nested at will): the key is made of these
    work: Callable[[Path], StageOutput]  # the stage's folder -> its outputs


@dataclass
class StageRecord:
    name: str
    key: str
    cached: bool
    seconds: float
    result: dict[str, Any]


def folder_fingerprint(root: Path) -> str:
    """Content identity of a folder: every file's path inside it and its sha256 (moving, renaming or touching the
    folder keeps it; LFW's 13k images take a few seconds, once per run)."""
    lines = [f"{p.relative_to(root).as_posix()}\t{sha256_file(p)}" for p in sorted(root.rglob("*")) if p.is_file()]
    return sha256_text("\n".join(lines))


class InputHasher:
    """Stage inputs as key material: files and folders by content; each folder read once per run, since the same
    image tree feeds several stages."""

    def __init__(self) -> None:
        self._folders: dict[Path, str] = {}

    def folder(self, path: Path) -> str:
        path = Path(path).resolve()
        if path not in self._folders:
            self._folders[path] = folder_fingerprint(path)
        return self._folders[path]

    def plain(self, value: Any) -> Any:
        if isinstance(value, FileInput):
            if not Path(value.path).is_file():
                raise InputError(f"stage input not found: {value.path}")
            return {"sha256": sha256_file(value.path)}
        if isinstance(value, FolderInput):
            return {"tree_sha256": self.folder(value.path)}
        if isinstance(value, Path):  # a name would make the key depend on where the file lies
            raise TypeError(f"stage input {value}: declare it as FileInput or FolderInput")
        if isinstance(value, dict):
            return {str(k): self.plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.plain(v) for v in value]
        return value


def _file(path: Path | None) -> FileInput | None:
    return None if path is None else FileInput(Path(path))


# --- run-relative paths ----------------------------------------------------------------------------------------------
def to_run_relative(value: Any, root: Path) -> Any:
    """``value`` with every absolute path inside ``root`` rewritten relative to it (POSIX), so that the run folder
    can be moved; paths outside it (the photos, the pairs files) stay as they are, but for those spelled through
    the run folder (``<run>/prepare/../../photos``, how faces.csv's rows resolve), which are written out."""
    if isinstance(value, dict):
        return {k: to_run_relative(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_run_relative(v, root) for v in value]
    if isinstance(value, Path):
        value = str(value)
    top = str(root)
    if isinstance(value, str) and os.path.isabs(value) and (value == top or value.startswith(top + os.sep)):
        norm = os.path.normpath(value)
        inside = norm == top or norm.startswith(top + os.sep)
        return Path(os.path.relpath(norm, top)).as_posix() if inside else norm
    return value


def in_run(root: Path, stored: Any, what: str) -> Path:
    """A run-relative path read back from a state file, as a path under ``root``; one that is absolute or climbs
    out with ``..`` is refused (a stage record must never make ftk read or overwrite files elsewhere)."""
    if not is_relative_inside(stored):
        raise InputError(f"{what}: {stored!r} is not a path inside the run folder {root}",
                         hint="the stage record was edited or written by another tool: delete that stage's folder "
                              "or re-run it with --force")
    return root / stored


# --- running stages with a cache -------------------------------------------------------------------------------------
def check_force(force: set[str]) -> None:
    import difflib

    for name in sorted(force):
        if name not in STAGES:
            close = difflib.get_close_matches(name, STAGES, n=1)
            raise InputError(f"--force {name}: no such stage" + (f" (did you mean {close[0]!r}?)" if close else ""),
                             hint=f"stages: {', '.join(STAGES)}")


class StageRunner:
    """Runs stages in order; reuses a stage whose stage.json holds the same key and whose outputs all exist."""

    def __init__(self, run_dir: Path, force: set[str] | None = None):
        check_force(force or set())
        self.run_dir = run_dir
        self.force = force or set()
        self.hasher = InputHasher()
        self.records: dict[str, StageRecord] = {}

    def run(self, stage: Stage) -> StageRecord:
        inputs = to_run_relative(self.hasher.plain(stage.inputs), self.run_dir)
        key = sha256_text(json.dumps(inputs, sort_keys=True))
        folder = self.run_dir / stage.name
        saved = self._reusable(stage.name, key, folder / STAGE_FILE)
        if saved is not None:
            log.info("stage %s: up to date (cached)", stage.name)
            return self._keep(StageRecord(stage.name, key, True, float(saved.get("seconds", 0.0)), saved["result"]))
        log.info("stage %s: running", stage.name)
        ensure_writable_dir(folder)
        started = time.perf_counter()
        out = stage.work(folder)
        seconds = time.perf_counter() - started
        result = to_run_relative(to_plain(out.result), self.run_dir)
        files = [self._own(stage.name, p) for p in out.files]
        # Written last: a stage interrupted before this line is redone on the next run.
        write_json_atomic(folder / STAGE_FILE, {"key": key, "inputs": inputs, "outputs": files, "seconds": seconds,
                                                "result": result, "finished_at": _now()})
        return self._keep(StageRecord(stage.name, key, False, seconds, result))

    def _reusable(self, name: str, key: str, marker: Path) -> dict[str, Any] | None:
        """The saved record when the stage need not run again, else None."""
        if name in self.force or not marker.is_file():
            return None
        try:
            saved = read_json(marker, "stage record")
        except InputError:
            return None
        if not isinstance(saved, dict) or saved.get("key") != key or not isinstance(saved.get("outputs"), list):
            return None
        gone = [p for p in saved["outputs"] if not in_run(self.run_dir, p, f"{marker}: outputs").exists()]
        if gone:
            log.info("stage %s: %s is gone, running it again", name, gone[0])
            return None
        return saved

    def _own(self, name: str, path: str | Path) -> str:
        rel = to_run_relative(str(path), self.run_dir)
        if os.path.isabs(rel):
            raise ValueError(f"stage {name} wrote {path}, outside the run folder {self.run_dir}")
        return rel

    def _keep(self, record: StageRecord) -> StageRecord:
        self.records[record.name] = record
        return record


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunContext:
    """What the stages share: the config, the run folder and the records of the stages that have run."""

    config: PipelineConfig
    config_path: Path
    root: Path
    runner: StageRunner
    progress: bool

    @property
    def data_dir(self) -> Path:
        return Path(self.config.evaluate.data or self.config.prepare.images)

    def result(self, stage: str) -> dict[str, Any] | None:
        record = self.runner.records.get(stage)
        return record.result if record else None

    def path(self, stage: str, *keys: str) -> Path:
        """A path out of a stage's result, confined to the run folder (a cached result was read from disk)."""
        value: Any = self.result(stage)
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return in_run(self.root, value, f"{stage}/{STAGE_FILE}: result.{'.'.join(keys)}")

    @property
    def faces_csv(self) -> Path:
        return self.path("prepare", "csv_path")

    def faces(self) -> dict[str, Any]:
        """The prepared faces as an input: the CSV and the photos it crops from."""
        return {"csv": FileInput(self.faces_csv), "images": FolderInput(Path(self.config.prepare.images))}

    @property
    def start(self) -> Path:
        return self.path("base", "path")

    @property
    def fine_tuned(self) -> Path | None:
        train = self.result("train")
        if train is None:
            return None
        return self.path("train", "best_checkpoint" if train.get("best_checkpoint") else "last_checkpoint")

    @property
    def shipped(self) -> Path:
        if self.result("select") is not None:
            return self.path("select", "shipped_path")
        return self.fine_tuned or self.start

    @property
    def artifacts(self) -> dict[str, Path]:
        return {p: self.path("export", "artifacts", p, "path") for p in (self.result("export") or {})["artifacts"]}


# --- the stages: each declares what it reads and returns what it wrote ------------------------------------------------
def _settings(section: Any, *paths: str) -> dict[str, Any]:
    """A config section's values without its path fields (those enter a key by content, as inputs)."""
    return {k: v for k, v in to_plain(section).items() if k not in paths}


def prepare_stage(run: RunContext) -> Stage:
    p = run.config.prepare

    def work(folder: Path) -> StageOutput:
        from toolkit.prepare import prepare

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
        from toolkit.init_checkpoint import init_checkpoint

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
        from toolkit.train import train

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
        from toolkit.evaluate import evaluate_model_file

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
        from toolkit.export import export_model

        res = export_model(checkpoint, folder, quantize="int8" if c.export.quantize else None,
                           calibration=faces_csv, calibration_limit=c.export.calibration_limit,
                           overwrite=True, progress=run.progress)
        summary = res.summary()
        files = [a["path"] for a in summary["artifacts"].values()] + [summary.get("manifest")]
        if "parity_sample" in res.manifest:  # the faces calibration did not see: the parity stage uses them
            files.append(str(folder / PARITY_SAMPLE_NAME))
        return StageOutput(summary, [f for f in files if f])

    return Stage("export", {**_settings(c.export), "checkpoint": FileInput(checkpoint), "faces": run.faces()}, work)


def evaluate_stage(run: RunContext) -> Stage:
    """The accuracy ladder: the same pairs through every embedder, one code path."""
    from toolkit.deploy.kotlin import template_fingerprint

    e = run.config.evaluate
    rungs = _ladder_models(run) + _app_rungs(run)
    # Classification accuracy needs a head and a test split.
    classify = run.faces_csv if (run.result("prepare").get("split_counts") or {}).get("test") else None

    def work(folder: Path) -> StageOutput:
        rows = [_evaluate_rung(run, label, path, mode, classify, folder) for label, path, mode in rungs]
        return StageOutput({"ladder": rows}, _row_files(rows))

    app_after = any(mode == "after" for *_, mode in rungs)
    return Stage("evaluate", {"pairs": FileInput(Path(e.pairs)), "data": FolderInput(run.data_dir), "far": e.far,
                              "limit_pairs": e.limit_pairs,
                              "rungs": [[label, FileInput(path), mode] for label, path, mode in rungs],
                              "classify_faces": run.faces() if classify else None,
                              "kotlin": template_fingerprint() if app_after else None}, work)


def parity_stage(run: RunContext) -> Stage:
    """torch vs LiteRT on the faces the export held out of calibration (else the prepared faces)."""
    checkpoint, faces_csv, artifacts, limit = run.shipped, run.faces_csv, run.artifacts, run.config.parity.limit
    sample = next(iter(artifacts.values())).with_name(PARITY_SAMPLE_NAME) if artifacts else None
    held_out = sample is not None and sample.is_file()
    # Decisions are compared at the threshold the app will use: the one calibrated for the float model.
    threshold = next((row.get("threshold") for row in run.result("evaluate")["ladder"] if row["model"] == "pytorch"),
                     None)

    def work(folder: Path) -> StageOutput:
        from toolkit.parity import parity_check

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
        from toolkit.bench import run_bench

        res = run_bench(models, device="host", threads=b.threads, warmup=b.warmup, runs=b.runs, checkpoint=baseline,
                        out_dir=folder, plot_path=folder / "latency.png", overwrite=True, progress=run.progress)
        result = res.to_dict(with_samples=False)
        return StageOutput(result, [f for f in (result.get("outputs") or {}).values() if f])

    return Stage("bench", {**_settings(b), "models": [FileInput(m) for m in models],
                           "checkpoint": _file(baseline)}, work)


# In STAGES order; a plan returns None for a stage the config leaves out.
STAGE_PLANS: tuple[Callable[[RunContext], Stage | None], ...] = (
    prepare_stage, base_stage, train_stage, select_stage, export_stage, evaluate_stage, parity_stage, bench_stage)


def _ladder_models(run: RunContext) -> list[tuple[str, Path, str | None]]:
    models: list[tuple[str, Path, str | None]] = []
    if run.fine_tuned is not None:
        if run.config.evaluate.pytorch_baseline:
            models.append(("pytorch (start)", run.start, None))
        if run.shipped != run.fine_tuned:
            models.append(("pytorch (fine-tuned, not shipped)", run.fine_tuned, None))
    models.append(("pytorch", run.shipped, None))
    artifacts = run.artifacts
    return models + [(f"tflite {p}", artifacts[p], None) for p in ("float32", "int8") if p in artifacts]


def _app_rungs(run: RunContext) -> list[tuple[str, Path, str | None]]:
    """The deployed artifact with the app's crops, before and after ftk deploy."""
    d, artifacts = run.config.deploy, run.artifacts
    if d is None or not d.app_rungs or d.variant not in artifacts:
        return []
    return [(f"app {mode} deploy ({d.variant})", artifacts[d.variant], mode) for mode in ("before", "after")]


def _evaluate_rung(run: RunContext, label: str, model_path: Path, simulate_app: str | None,
                   classify_csv: Path | None, folder: Path) -> dict[str, Any]:
    from toolkit.evaluate import evaluate_model_file

    e = run.config.evaluate
    # TFLite reports go beside the model (<stem>.eval/) so `ftk deploy --threshold auto` finds them.
    slug = label.replace(" ", "_").replace("(", "").replace(")", "")
    out = None if model_path.suffix == ".tflite" else folder / slug
    try:
        res = evaluate_model_file(model_path, pairs=e.pairs, data=run.data_dir,
                                  csv=None if simulate_app else classify_csv, far=e.far, limit_pairs=e.limit_pairs,
                                  out_dir=out, overwrite=True, progress=run.progress, simulate_app=simulate_app)
    except DependencyError as exc:  # no kotlinc: the app-after rung is reported as not measured
        return {"model": label, "path": str(model_path), "skipped": str(exc)}
    return _ladder_row(label, model_path, res)


def _row_files(rows: Any) -> list[str]:
    return [row[k] for row in rows for k in ("report", "roc_png", "scores_png") if row.get(k)]


# --- the run ---------------------------------------------------------------------------------------------------------
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
    from toolkit.export import tool_versions

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
