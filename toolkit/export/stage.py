"""The export stage, :func:`export_model`: checkpoint -> model_float32.tflite (+ model_int8 / model_float16)
+ manifest.json, all renamed into place only when every file succeeded."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.checkpoint import LoadedCheckpoint, load_checkpoint
from toolkit.constants import (
    DEFAULT_CALIBRATION_FACES, DEFAULT_PARITY_FACES, DEFAULT_PICK, MANIFEST_NAME, MAX_INPUT_SIZE, MIN_INPUT_SIZE,
)
from toolkit.constants import PARITY_SAMPLE_NAME as SAMPLE_NAME
from toolkit.errors import InputError, ToolkitError
from toolkit.export.calibration import MIN_CALIBRATION_FACES, CalibrationPlan, _read_calibration
from toolkit.export.convert import (
    _check_loadable, _first_line, convert_float32, fold_for_export, refuse_training_mode, sample_input,
)
from toolkit.export.float16 import convert_float16
from toolkit.export.int8 import float_ops_of, quantised_kept_layers, quantize_int8_static
from toolkit.export.manifest_writer import _artifact, _make_readable, build_manifest, finalize_export
from toolkit.export.monitoring import PeakRss, process_peak_rss
from toolkit.export.results import ArtifactResult, ExportFailed, ExportResult
from toolkit.held_out import manifest_entry, write_sample
from toolkit.install import finish_interrupted, staged_install
from toolkit.io import (
    check_free_space, check_outputs_free, disk_full_is_input_error, ensure_writable_dir, free_bytes, no_space_error,
    write_json_atomic,
)
from toolkit.locks import exclusive
from toolkit.reference import synthetic_inputs
from toolkit.spec import ModelSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("toolkit.export")  # one logger for the stage: log lines keep the name they always had


WORK_PREFIX = ".ftk-export."  # the work folder in the export folder: .ftk-export.<x>.tmp/
ARTIFACT_NAMES = {"float32": "model_float32.tflite", "int8": "model_int8.tflite",
                  "float16": "model_float16.tflite"}
QUANTIZE_CHOICES = ("int8", "float16")


def parse_quantize(quantize: str | None) -> list[str]:
    """``--quantize`` -> the extra precisions in a fixed order: None -> [], "int8,float16" -> ["int8", "float16"]."""
    if quantize is None or str(quantize).strip() == "":
        return []
    parts = [p.strip().lower() for p in str(quantize).split(",") if p.strip()]
    for part in parts:
        if part not in QUANTIZE_CHOICES:
            hint = ("dynamic-range (hybrid) int8 is not offered: its embeddings were wrong on TFLite 2.12/2.14 "
                    "runtimes" if "dyn" in part or "hybrid" in part
                    else f"choose {', '.join(QUANTIZE_CHOICES)}, or both comma-separated (int8,float16)")
            raise InputError(f"unknown --quantize {quantize!r}", hint=hint)
    return [p for p in QUANTIZE_CHOICES if p in parts]


def _validate_float_layers(backbone: "nn.Module", names: tuple[str, ...]) -> tuple[str, ...]:
    known = {name for name, _ in backbone.named_modules() if name}
    unknown = [n for n in names if n not in known]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(known), n=3)
        raise InputError(f"--keep-float: no layer {unknown[0]!r} in the backbone",
                         hint=("did you mean " + ", ".join(close) + "? " if close else "")
                              + "ftk parity-check --layers lists the layer names")
    return tuple(names)


def _estimated_bytes(module: "nn.Module", precisions: list[str]) -> int:
    """What the artifacts will take on disk, from the parameter count (+ graph overhead), with a margin."""
    params = sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers())
    per_param = {"float32": 4.0, "float16": 2.2, "int8": 1.3}
    return int(sum(params * per_param[p] + 256 * 1024 for p in precisions) * 1.1) + 64 * 1024


def export_model(
    checkpoint: "str | Path | LoadedCheckpoint",
    out_dir: str | Path,
    quantize: str | None = None,
    calibration: str | Path | None = None,
    calibration_limit: int = DEFAULT_CALIBRATION_FACES,
    input_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    seed: int = 0,
    keep_float: tuple[str, ...] | list[str] = (),
    calibration_batch: int = 1,
    pick: str = DEFAULT_PICK,
    parity_faces: int = DEFAULT_PARITY_FACES,
) -> ExportResult:
    """Export ``checkpoint`` to ``out_dir``: model_float32.tflite (+ model_int8 / model_float16) + manifest.json.

    ``quantize``: None, "int8", "float16" or "int8,float16". ``keep_float``: backbone layer names the int8 graph
    leaves in float. ``calibration_batch``: faces per observation step (a batch-dimension graph when > 1).
    ``pick``: the face-picking rule for a calibration photo folder. ``parity_faces``: how many faces beyond
    ``calibration_limit`` to read and hold out of calibration (by image content hash) for ``ftk parity-check``
    (``parity_faces.npz``; none when fewer than 8 can be spared; 0: none).
    """
    started = time.perf_counter()
    extra = parse_quantize(quantize)
    int8 = "int8" in extra
    if int8 and calibration is None:
        raise InputError("int8 export needs calibration faces",
                         hint="pass --faces DIR_OR_CSV with a few hundred real face photos")
    if int8 and calibration_limit < MIN_CALIBRATION_FACES:
        raise InputError(f"--calibration-limit {calibration_limit} is too small; int8 needs at least "
                         f"{MIN_CALIBRATION_FACES} calibration faces (a few hundred recommended)")
    if calibration is not None and not int8:
        log.warning("--faces (calibration) is only used with --quantize int8; ignoring it")
    if keep_float and not int8:
        raise InputError("--keep-float only applies to the int8 export", hint="add --quantize int8")
    if calibration_batch < 1:
        raise InputError(f"--calibration-batch must be >= 1, got {calibration_batch}")
    if parity_faces < 0:
        raise InputError(f"--parity-faces must be >= 0, got {parity_faces}")
    if input_size is not None and not MIN_INPUT_SIZE <= input_size <= MAX_INPUT_SIZE:  # before any allocation
        raise InputError(f"--input-size must be in {MIN_INPUT_SIZE}..{MAX_INPUT_SIZE}, got {input_size}")

    out_dir = Path(out_dir)
    precisions = ["float32"] + extra
    outputs = {p: out_dir / ARTIFACT_NAMES[p] for p in precisions}
    manifest_path = out_dir / MANIFEST_NAME
    created_dir = not out_dir.exists()
    with exclusive(out_dir, "the export folder"):  # one export into a folder at a time
        finish_interrupted(out_dir, WORK_PREFIX, [*ARTIFACT_NAMES.values(), MANIFEST_NAME, SAMPLE_NAME])
        check_outputs_free([*outputs.values(), manifest_path] + ([out_dir / SAMPLE_NAME] if int8 else []), overwrite)
        try:
            t0 = time.perf_counter()
            loaded = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
            load_seconds = time.perf_counter() - t0
            ensure_writable_dir(out_dir)
            calibration_plan = CalibrationPlan(calibration, calibration_limit, seed, pick, parity_faces)
            result = _export_loaded(loaded, out_dir, outputs, manifest_path, calibration_plan, input_size, progress,
                                    tuple(keep_float), calibration_batch, load_seconds)
        except BaseException:
            # Leave nothing behind: a folder this call created and that is still empty goes too.
            if created_dir and out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()
            raise
    result.total_seconds = time.perf_counter() - started
    result.process_peak_rss_bytes = process_peak_rss()
    return result


def _disk_full(exc: BaseException, folder: Path) -> bool:
    import errno

    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
    try:
        return free_bytes(folder) < 256 * 1024
    except OSError:
        return False


def _export_loaded(loaded: "LoadedCheckpoint", out_dir: Path, outputs: dict[str, Path], manifest_path: Path,
                   calibration: CalibrationPlan, input_size: int | None, progress: bool,
                   keep_float: tuple[str, ...], calibration_batch: int, load_seconds: float) -> ExportResult:
    import torch

    from toolkit.models.face_model import EmbeddingModel

    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    model = loaded.model
    spec = model.spec if input_size is None else model.spec.replace(input_size=input_size)
    # Not embedding_model_from(): that calls .eval(), which would hide a model left in training mode.
    module = EmbeddingModel(model.backbone, spec)
    module.training = model.training
    for name, child in module.named_children():  # the wrapper's own parts (pixel normalisation) follow the model
        if name != "backbone":
            child.train(model.training)
    refuse_training_mode(module)
    keep_float = _validate_float_layers(model.backbone, keep_float)
    sample = sample_input(spec)
    try:
        with torch.no_grad():
            probe = module(sample)
    except RuntimeError as exc:
        raise InputError(f"the {spec.backbone} backbone cannot run at input size {spec.input_size}: "
                         f"{_first_line(exc)}", hint="choose a larger --input-size") from None
    if tuple(probe.shape) != (1, spec.embedding_dim):
        raise ExportFailed(f"the embedding model outputs {tuple(probe.shape)}, expected (1, {spec.embedding_dim})")
    # Before any conversion: refuse a disk that cannot take the artifacts (exit 2, nothing written).
    check_free_space(out_dir, _estimated_bytes(module, list(outputs)), f"{len(outputs)} model file(s)")
    stages["load"] = load_seconds + time.perf_counter() - t0

    faces = None
    calibration_info: dict[str, Any] | None = None
    held_out = None
    if "int8" in outputs:
        t0 = time.perf_counter()
        calib, held, digests, calibration_info = _read_calibration(calibration, spec, out_dir, progress)
        faces = calib.images
        held_out = (held, calib, digests) if len(held) else None
        stages["crops"] = time.perf_counter() - t0

    # One folded copy for every precision (exact folds, checked on real faces when there are any).
    t0 = time.perf_counter()
    check = faces if faces is not None else synthetic_inputs(spec.input_size, 4, seed=calibration.seed)
    folded, fold = fold_for_export(module, check)
    stages["fold"] = time.perf_counter() - t0
    if fold["residual_scales"] or fold["final_batchnorm"]:
        log.info("folded %d residual scales, %d final BatchNorm (max float embedding change %.2g)",
                 fold["residual_scales"], fold["final_batchnorm"], fold["max_abs_diff"])

    artifacts: dict[str, ArtifactResult] = {}
    # Every output is built in a work folder and installed as one step, the manifest last (toolkit.install).
    with disk_full_is_input_error(out_dir), staged_install(out_dir, WORK_PREFIX, last=MANIFEST_NAME) as staging:
        work = staging.folder
        tmp_paths = {p: work / ARTIFACT_NAMES[p] for p in outputs}
        try:
            artifacts = _convert_all(folded, sample, spec, outputs, tmp_paths, faces, progress, keep_float,
                                     calibration_batch, calibration_info, fold)
        except ToolkitError as exc:
            if isinstance(exc, ExportFailed) and _disk_full(exc, out_dir):
                raise no_space_error(out_dir) from None
            raise
        except OSError as exc:
            if _disk_full(exc, out_dir):
                raise no_space_error(out_dir) from None
            raise
        for art in artifacts.values():
            stages["convert"] = stages.get("convert", 0.0) + art.info["export_stages"]["convert"]
            stages["check"] = stages.get("check", 0.0) + art.info["export_stages"]["check"]
            if "calibrate" in art.info["export_stages"]:
                stages["calibrate"] = art.info["export_stages"]["calibrate"]
        export_info = {"stages_seconds": {k: round(v, 2) for k, v in stages.items()},
                       "calibration_batch": calibration_batch if faces is not None else None}
        manifest = build_manifest(loaded, spec, artifacts, export_info, out_dir)
        source = calibration_info["source"] if calibration_info else None
        _stage_parity_sample(manifest, held_out, work, source)
        finalize_export(manifest, artifacts, tmp_paths)  # contract into each .tflite, then its final sha256 and size
        write_json_atomic(work / MANIFEST_NAME, manifest)
        _make_readable(work / MANIFEST_NAME)
        staging.remove += _stale_outputs(out_dir, outputs, manifest)
    for precision, art in artifacts.items():
        log.info("wrote %s (%.2f MiB, %.1f s)", art.path, art.size_bytes / 2**20, art.seconds)
    for name in staging.remove:
        log.warning("removed %s from an earlier export (not part of this one)", out_dir / name)
    return ExportResult(out_dir=out_dir, manifest_path=manifest_path, spec=spec, artifacts=artifacts,
                        manifest=manifest, calibration_faces=0 if faces is None else len(faces),
                        folded_blocks=fold["residual_scales"], stages=stages,
                        removed_stale=[str(out_dir / name) for name in staging.remove])


def _stale_outputs(out_dir: Path, outputs: dict[str, Path], manifest: dict[str, Any]) -> list[str]:
    """With --overwrite, outputs of an earlier export that this one does not produce would contradict the manifest
    beside them: the install removes them (an artifact of another precision, a parity sample it did not record)."""
    stale = [name for precision, name in ARTIFACT_NAMES.items() if precision not in outputs]
    if "parity_sample" not in manifest:
        stale.append(SAMPLE_NAME)
    return [name for name in stale if os.path.lexists(out_dir / name)]


def _stage_parity_sample(manifest: dict[str, Any], held_out, work: Path, source) -> Path | None:
    """Write the held-out parity faces into the work folder and name them in the manifest (None: no sample)."""
    if held_out is None:
        return None

    held, calib, digests = held_out
    path = work / SAMPLE_NAME
    manifest["parity_sample"] = manifest_entry(held, calib, digests, write_sample(path, held), source)
    log.info("held out %d faces for parity-check (%s)", len(held), SAMPLE_NAME)
    return path


def _produce(precision: str, convert: Any, outputs: dict[str, Path], tmp_paths: dict[str, Path],
             spec: ModelSpec) -> tuple[ArtifactResult, Any]:
    """Run ``convert()`` (-> (stage seconds, its result)), check the file loads, inspect it; the artifact has its
    stage times (convert..., check) and peak RSS."""
    with PeakRss() as rss:
        t0 = time.perf_counter()
        stages, value = convert()
        stages = dict(stages) if stages else {"convert": time.perf_counter() - t0}
        t0 = time.perf_counter()
        _check_loadable(tmp_paths[precision], spec)
        art = _artifact(precision, outputs[precision], tmp_paths[precision], 0.0, rss.peak)
        stages["check"] = time.perf_counter() - t0
    _set_times(art, stages, rss.peak)
    return art, value


def _convert_all(folded: "nn.Module", sample: "torch.Tensor", spec: ModelSpec, outputs: dict[str, Path],
                 tmp_paths: dict[str, Path], faces: np.ndarray | None, progress: bool,
                 keep_float: tuple[str, ...], calibration_batch: int, calibration_info: dict[str, Any] | None,
                 fold: dict[str, Any]) -> dict[str, ArtifactResult]:
    artifacts: dict[str, ArtifactResult] = {}
    log.info("converting %s to float32 TFLite", spec.backbone)
    art, _ = _produce("float32", lambda: (None, convert_float32(folded, sample, tmp_paths["float32"],
                                                                 progress=progress)), outputs, tmp_paths, spec)
    art.info["float_ops"] = {"all": "float32 model"}
    artifacts["float32"] = art

    if "int8" in outputs:
        assert faces is not None
        log.info("quantising to int8 on %d faces", len(faces))

        def int8() -> tuple[dict[str, float], dict[str, Any]]:
            quant = quantize_int8_static(folded, sample, faces, tmp_paths["int8"], progress=progress,
                                         float_layers=keep_float, batch_size=calibration_batch)
            return {"calibrate": quant["calibrate_seconds"], "convert": quant["convert_seconds"]}, quant

        art, quant = _produce("int8", int8, outputs, tmp_paths, spec)
        if art.info.get("hybrid_int8"):
            raise ExportFailed("the int8 model came out dynamic-range (float activations); refusing to ship it")
        art.info["quantization"] = {
            "method": "pt2e-static",
            "weights": "int8 per-channel symmetric",
            "activations": "int8 per-tensor affine (histogram observer)",
            "fused_conv_relu6": quant["fused_conv_relu6"],
            "integer_adds": quant["integer_adds"],
            "float_layers": list(keep_float),
            "io": "float32",
            "folded_residual_scales": fold["residual_scales"],
            "folded_final_batchnorm": fold["final_batchnorm"],
            "fold_max_abs_diff": fold["max_abs_diff"],
            "calibration": {**(calibration_info or {}), "batch": quant["calibration_batch"]},
        }
        art.info["float_ops"] = float_ops_of(tmp_paths["int8"], keep_float)
        still_int8 = quantised_kept_layers(tmp_paths["int8"], keep_float) if keep_float else []
        if still_int8:
            raise ExportFailed(f"--keep-float {', '.join(still_int8)}: the converter quantised it anyway",
                               hint="keep it together with the layers after it, up to the tail (e.g. "
                                    "--keep-float gdconv,conv3 for MobileFaceNet)")
        artifacts["int8"] = art
    # After int8: importing ai-edge-quantizer (jax) before calibration slowed it down in one measurement.
    if "float16" in outputs:
        art, _ = _produce("float16", lambda: (None, convert_float16(tmp_paths["float32"], tmp_paths["float16"])),
                          outputs, tmp_paths, spec)
        art.info["quantization"] = {"method": "float16 weights (ai-edge-quantizer float_casting)",
                                    "weights": "float16, DEQUANTIZE to float32 in the graph",
                                    "activations": "float32", "io": "float32"}
        art.info["float_ops"] = {"all": "float32 compute; only the conv/FC weights are stored as float16"}
        artifacts["float16"] = art
    return artifacts


def _set_times(art: ArtifactResult, stages: dict[str, float], peak: int) -> None:
    art.seconds = sum(stages.values())
    art.peak_rss_bytes = peak
    art.info["export_seconds"] = round(art.seconds, 2)
    art.info["export_stages"] = {k: round(v, 2) for k, v in stages.items()}
    art.info["export_peak_rss_mib"] = round(peak / 2**20, 1)
