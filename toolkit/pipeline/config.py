"""The pipeline's YAML config (``ftk pipeline --config``): one section per stage, and the checks made on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from toolkit.config import from_dict, load_config
from toolkit.constants import DEFAULT_CALIBRATION_FACES, DEFAULT_FAR, DEFAULT_PARITY_FACES, DEFAULT_THREADS
from toolkit.data.pairs import read_pairs
from toolkit.errors import ConfigError
from toolkit.models.registry import get_backbone_info
from toolkit.train import TrainConfig


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
    # Faces beyond calibration_limit held out of calibration for the parity stage (at least parity.limit).
    parity_faces: int = DEFAULT_PARITY_FACES


@dataclass
class ParitySection:
    limit: int = DEFAULT_PARITY_FACES  # faces compared; with an int8 export, at most export.parity_faces


@dataclass
class BenchSection:
    enabled: bool = True
    threads: list[int] = field(default_factory=lambda: [DEFAULT_THREADS])
    runs: int = 30
    warmup: int = 3
    pytorch_baseline: bool = True


@dataclass
class DeploySection:
    app: Path
    variant: Literal["int8", "float32", "float16"] = "int8"
    threshold: Literal["auto", "keep"] | float = "auto"
    dry_run: bool = False
    # Deploy into <run>/app, a fresh, writable copy of `app` made on every run (the checkout stays pristine).
    copy_to_run: bool = False
    app_code: Literal["patch", "kit", "none"] = "patch"  # as ftk deploy --app-code
    keep_app_preprocessing: bool = False  # old name of app_code: none
    verify_runtime: bool = False  # run the model on the app's TensorFlow Lite version first (a cached venv)
    # The false-accept rate of threshold: auto (default: evaluate.far). The evaluation pairs must resolve it: a
    # pairs file with N different-person pairs resolves FAR >= 1/N (pairsDevTest.txt: 500, so 1e-2, not 1e-3).
    far: float | None = None
    force: bool = False  # deploy despite a degenerate or unresolvable threshold or failed parity (said loudly)
    # The two app rungs on the ladder: the app's own crop (simulated) and, after the deploy, the patched app's own
    # crop code run on the JVM.
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

    get_backbone_info(config.backbone)  # unknown backbone: fail before any work
    if config.train is not None:
        _train_config(config, Path(path).resolve().parent, Path("/nonexistent/faces.csv"), Path("/nonexistent"))
    if config.evaluate.select_pairs is not None:
        check_selection_pairs(config.evaluate.select_pairs, config.evaluate.pairs)
    check_parity_limit(config)
    return config


def check_parity_limit(config: PipelineConfig) -> None:
    """parity.limit faces must exist: with an int8 export, parity compares the faces the export held out."""
    limit, held = config.parity.limit, config.export.parity_faces
    if config.export.quantize and limit > held:
        raise ConfigError(f"parity.limit {limit} is more than the {held} faces the int8 export holds out of "
                          "calibration for parity (export.parity_faces): parity would compare only those",
                          hint=f"set export.parity_faces: {limit} (or parity.limit: {held})")


def check_selection_pairs(select: Path, test: Path) -> None:
    """The pairs that choose the shipped model must not share a person with the pairs that measure it."""
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
