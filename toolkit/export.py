"""Export the head-less embedding model to TFLite: float32, and full-integer int8 (PT2E static) with a manifest.

What ships is :class:`toolkit.models.face_model.EmbeddingModel`: ``[1, N, N, 3]`` float32 raw pixels 0..255 (NHWC)
in, the spec's normalisation and the final L2 normalisation inside the graph, ``[1, D]`` out. The classifier head
is not part of it by construction.

int8 is litert-torch's PT2E flow: ``torch.export`` -> ``prepare_pt2e`` with :class:`PT2EQuantizer` (per-channel
symmetric int8 weights, per-tensor int8 activations from histogram observers, conv + ReLU6 fused) -> calibration on real face crops
through the same preprocessing -> ``convert_pt2e`` -> ``litert_torch.convert(..., quant_config=STATIC)``. Input and
output stay float32 (QUANTIZE/DEQUANTIZE at the edges), so the app feeds the same buffer to both variants.
Dynamic-range ("hybrid") int8 is deliberately not offered: its embeddings were wrong on the app's runtimes.

Everything lands atomically: artifacts and manifest are written to temp files in the output folder and renamed only
when all of them succeeded, so a failure never leaves a truncated model or a manifest describing files that are not
there.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import logging
import os
import platform
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from toolkit import __version__
from toolkit.errors import InputError, NoFacesError, ToolkitError
from toolkit.io import atomic_path, check_outputs_free, ensure_writable_dir, sha256_file
from toolkit.spec import ModelSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

    from toolkit.checkpoint import LoadedCheckpoint

log = logging.getLogger(__name__)

EXPORT_FORMAT = "ftk.export/1"
MANIFEST_NAME = "manifest.json"
ARTIFACT_NAMES = {"float32": "model_float32.tflite", "int8": "model_int8.tflite"}
QUANTIZE_CHOICES = ("int8",)
MIN_CALIBRATION_FACES = 16
WARN_CALIBRATION_FACES = 100
DEFAULT_CALIBRATION_LIMIT = 300
# Folding is exact in real arithmetic; in float32 it moves a rounding step, nothing more.
FOLD_TOLERANCE = 1e-4


class ExportFailed(ToolkitError):
    """The converter or quantiser failed on a model that loaded fine (not a user-input problem)."""


@dataclass
class ArtifactResult:
    precision: str  # "float32" | "int8"
    path: Path
    size_bytes: int
    sha256: str
    seconds: float  # conversion (and for int8: prepare + calibrate + convert) wall time
    peak_rss_bytes: int  # peak resident memory of this process while this artifact was produced (sampled)
    info: dict[str, Any] = field(default_factory=dict)  # the manifest entry


@dataclass
class ExportResult:
    out_dir: Path
    manifest_path: Path
    spec: ModelSpec
    artifacts: dict[str, ArtifactResult]  # by precision
    manifest: dict[str, Any]
    calibration_faces: int = 0
    folded_blocks: int = 0
    total_seconds: float = 0.0
    process_peak_rss_bytes: int = 0
    removed_stale: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "manifest": str(self.manifest_path),
            "artifacts": {
                p: {"path": str(a.path), "size_bytes": a.size_bytes, "seconds": round(a.seconds, 2),
                    "peak_rss_mib": round(a.peak_rss_bytes / 2**20, 1), "sha256": a.sha256,
                    "min_runtime": a.info.get("min_runtime")}
                for p, a in self.artifacts.items()
            },
            "calibration_faces": self.calibration_faces,
            "folded_blocks": self.folded_blocks,
            "total_seconds": round(self.total_seconds, 2),
        }


# --------------------------------------------------------------------------------------------------------------------
# memory and progress helpers
# --------------------------------------------------------------------------------------------------------------------
class PeakRss:
    """Samples this process's resident set size in a thread; ``peak`` is the largest value seen in the block.

    ``ru_maxrss`` only ever grows over the life of the process, so it cannot separate float32 from int8 when both
    run in one process; sampling /proc/self/statm can (up to the sampling interval).
    """

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakRss":
        self.peak = self._rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self._rss())


def process_peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@contextlib.contextmanager
def litert_progress(enabled: bool) -> Iterator[None]:
    """Show or hide litert-torch's own task log for the duration of a conversion."""
    import litert_torch

    config = litert_torch._config.config
    before = config.show_progress
    config.show_progress = enabled
    try:
        yield
    finally:
        config.show_progress = before


def tool_versions() -> dict[str, str | None]:
    from importlib import metadata

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "ftk": __version__,
        "python": platform.python_version(),
        "torch": version("torch"),
        "torchao": version("torchao"),
        "litert-torch": version("litert-torch"),
        "ai-edge-litert": version("ai-edge-litert"),
        "facenet-pytorch": version("facenet-pytorch"),
    }


# --------------------------------------------------------------------------------------------------------------------
# conversion building blocks (usable on their own, e.g. by tests and benchmarks)
# --------------------------------------------------------------------------------------------------------------------
def refuse_training_mode(module: "nn.Module") -> None:
    """A module in training mode exports BatchNorm with batch statistics and live Dropout: refuse it."""
    training = [name or type(module).__name__ for name, m in module.named_modules() if m.training]
    if training:
        shown = ", ".join(training[:3]) + (f" and {len(training) - 3} more" if len(training) > 3 else "")
        raise InputError(
            f"the module to export is in training mode ({shown})",
            hint="call .eval() first; BatchNorm would use batch statistics and Dropout would stay active",
        )


def sample_input(spec: ModelSpec) -> "torch.Tensor":
    """The tracing example: one NHWC float32 face-sized input (values only matter for shape and dtype)."""
    import torch

    mid = sum(spec.value_range) / 2
    return torch.full((1, spec.input_size, spec.input_size, 3), mid, dtype=torch.float32)


def convert_float32(module: "nn.Module", sample: "torch.Tensor", path: str | Path, progress: bool = False) -> None:
    """litert-torch float32 conversion of an eval-mode module, written to ``path`` (the caller makes it atomic)."""
    import litert_torch

    refuse_training_mode(module)
    try:
        with litert_progress(progress):
            edge = litert_torch.convert(module, (sample,))
            edge.export(str(path))
    except ToolkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - converter errors come in many types
        log.debug("float32 conversion failed", exc_info=True)
        raise ExportFailed(f"litert-torch could not convert the model to float32: {_first_line(exc)}",
                           hint="run with -vv for the full traceback") from exc


def _conv_relu6_quantizer(quantization_config: Any) -> Any:
    """litert-torch's PT2EQuantizer plus one pattern it lacks: conv -> ReLU6 (``aten.hardtanh(0, 6)``).

    The stock quantizer fuses conv + ReLU but not conv + ReLU6: it observes the conv output *before* the clamp and
    lets ReLU6 share that range. The int8 scale then spans the whole pre-activation range (negatives and values far
    above 6), so the clamped tensor MobileFaceNet actually passes on uses a fraction of the 256 levels. Annotating
    the pair like conv + ReLU (no observer between them, one on the clamp's output) gives the range [0, 6] at most
    and lets the converter fuse RELU6 into CONV_2D / DEPTHWISE_CONV_2D: same op list, measured mean cosine to
    PyTorch 0.965 -> 0.995 on MobileFaceNet (docs/export.md).
    """
    from litert_torch.quantize import pt2e_quantizer_utils as qutils
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer
    from torch.fx import Node
    import torch

    conv_ops = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)
    clamp_ops = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)

    def annotate_conv_relu6(model: "torch.fx.GraphModule", config: Any) -> int:
        count = 0
        for node in model.graph.nodes:
            if node.op != "call_function" or node.target not in clamp_ops:
                continue
            low = node.args[1] if len(node.args) > 1 else -1.0
            conv = node.args[0]
            # Only a clamp at 0 is a fusable activation, and only when the conv feeds nothing else.
            if low != 0.0 or not isinstance(conv, Node) or conv.target not in conv_ops or len(conv.users) != 1:
                continue
            weight = conv.args[1]
            bias = conv.args[2] if len(conv.args) > 2 else None
            partition = [node, conv, weight] + ([bias] if isinstance(bias, Node) else [])
            if qutils._is_annotated(partition):
                continue
            inputs = {conv.args[0]: qutils.get_input_act_qspec(config), weight: qutils.get_weight_qspec(config)}
            if isinstance(bias, Node):
                inputs[bias] = qutils.get_bias_qspec(config)
            conv.meta["quantization_annotation"] = qutils.QuantizationAnnotation(input_qspec_map=inputs,
                                                                                _annotated=True)
            node.meta["quantization_annotation"] = qutils.QuantizationAnnotation(
                output_qspec=qutils.get_output_act_qspec(config), _annotated=True)
            qutils._mark_nodes_as_annotated(partition)
            count += 1
        return count

    class ConvReLU6Quantizer(PT2EQuantizer):
        fused_relu6 = 0

        def annotate(self, model: "torch.fx.GraphModule") -> "torch.fx.GraphModule":
            # Before the stock patterns, so its "conv" annotator no longer claims these convs.
            self.fused_relu6 = annotate_conv_relu6(model, self.global_config)
            return super().annotate(model)

    return ConvReLU6Quantizer().set_global(quantization_config)


def quantize_int8_static(module: "nn.Module", sample: "torch.Tensor", calibration_faces: np.ndarray,
                         path: str | Path, progress: bool = False) -> dict[str, Any]:
    """Full-integer int8 via litert-torch's PT2E quantizer, calibrated on ``calibration_faces`` (uint8 NHWC).

    Weights: int8 per-channel symmetric. Activations: int8 per-tensor (histogram observers), with conv + ReLU6
    annotated as one fused pattern (see :func:`_conv_relu6_quantizer`). I/O: float32. Returns what the quantiser
    did, for the manifest (``{"fused_conv_relu6": N}``).
    """
    import litert_torch
    import torch
    from litert_torch.quantize.pt2e_quantizer import get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    refuse_training_mode(module)
    quantizer = _conv_relu6_quantizer(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    try:
        exported = torch.export.export(module, (sample,)).module()
        prepared = prepare_pt2e(exported, quantizer)
        log.info("int8: %d conv + ReLU6 pairs quantised as fused patterns", quantizer.fused_relu6)
        faces = calibration_faces
        iterator: Any = range(len(faces))
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc="calibrating int8", unit="face")
        with torch.no_grad():
            # The exported graph has the app's static batch of 1.
            for i in iterator:
                prepared(torch.from_numpy(faces[i : i + 1].astype(np.float32)))
        converted = convert_pt2e(prepared, fold_quantize=False)
        # The graph was captured from an eval-mode module; an exported GraphModule still carries training=True,
        # which litert-torch warns about. Mark it eval the exported-model way (dropout/BN patterns) and clear the flag.
        move_exported_model_to_eval(converted)
        for submodule in converted.modules():
            submodule.training = False
        with litert_progress(progress):
            edge = litert_torch.convert(converted, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
            edge.export(str(path))
    except ToolkitError:
        raise
    except Exception as exc:  # noqa: BLE001
        log.debug("int8 quantisation failed", exc_info=True)
        raise ExportFailed(f"PT2E int8 quantisation/conversion failed: {_first_line(exc)}",
                           hint="run with -vv for the full traceback") from exc
    return {"fused_conv_relu6": quantizer.fused_relu6}


def fold_for_int8(module: "nn.Module", check_faces: np.ndarray) -> tuple["nn.Module", int, float]:
    """A copy of ``module`` with InceptionResnetV1's residual scales folded into the preceding 1x1 convs.

    Returns (folded copy, blocks folded, max |embedding difference| on ``check_faces``); refuses a fold that changes
    the float embeddings by more than rounding.
    """
    import torch

    from toolkit.models.inception_resnet import fold_residual_scales

    folded = copy.deepcopy(module)
    count = fold_residual_scales(folded)
    max_diff = 0.0
    if count and len(check_faces):
        x = torch.from_numpy(check_faces[:8].astype(np.float32))
        with torch.no_grad():
            for i in range(len(x)):
                a = module(x[i : i + 1])
                b = folded(x[i : i + 1])
                max_diff = max(max_diff, float((a - b).abs().max()))
        if not max_diff <= FOLD_TOLERANCE:  # also catches NaN
            raise ExportFailed(f"folding residual scales changed the float embeddings by {max_diff:.3g} "
                               f"(> {FOLD_TOLERANCE}); refusing to quantise a different model")
    return folded, count, max_diff


def inspect_artifact(path: Path) -> dict[str, Any]:
    """Op list with versions, minimum runtime, external buffers, I/O: from ``toolkit.tflite.inspect``."""
    from toolkit.tflite.inspect import inspect_tflite

    info = inspect_tflite(path)
    data = info.to_dict()
    # The file is still at its temp name here; hashes/sizes are added by the caller under the final name.
    for key in ("path", "sha256", "size_bytes"):
        data.pop(key, None)
    return data


def _check_loadable(path: Path, spec: ModelSpec) -> None:
    """The written file must load in LiteRT with the contract's input and output shapes."""
    from toolkit.embedders import load_interpreter

    interpreter = load_interpreter(path, num_threads=1)
    inp, out = interpreter.get_input_details(), interpreter.get_output_details()
    in_shape = tuple(int(v) for v in inp[0]["shape"])
    out_shape = tuple(int(v) for v in out[0]["shape"])
    expected_in = (1, spec.input_size, spec.input_size, 3)
    if len(inp) != 1 or len(out) != 1 or in_shape != expected_in or out_shape != (1, spec.embedding_dim):
        raise ExportFailed(f"the converted model has input {in_shape} / output {out_shape}, expected "
                           f"{expected_in} / {(1, spec.embedding_dim)}")
    if inp[0]["dtype"] != np.float32 or out[0]["dtype"] != np.float32:
        raise ExportFailed("the converted model does not have float32 input and output")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:240] if text else type(exc).__name__)


# --------------------------------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------------------------------
def export_model(
    checkpoint: "str | Path | LoadedCheckpoint",
    out_dir: str | Path,
    quantize: str | None = None,
    calibration: str | Path | None = None,
    calibration_limit: int = DEFAULT_CALIBRATION_LIMIT,
    input_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    seed: int = 0,
) -> ExportResult:
    """Export ``checkpoint`` to ``out_dir``: model_float32.tflite (+ model_int8.tflite) + manifest.json."""
    from toolkit.checkpoint import LoadedCheckpoint, load_checkpoint

    started = time.perf_counter()
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        hint = ("dynamic-range (hybrid) int8 is not offered: its embeddings were wrong on TFLite 2.12/2.14 runtimes"
                if "dyn" in str(quantize).lower() or "hybrid" in str(quantize).lower()
                else f"choose one of {', '.join(QUANTIZE_CHOICES)}")
        raise InputError(f"unknown --quantize {quantize!r}", hint=hint)
    if quantize and calibration is None:
        raise InputError("int8 export needs calibration faces",
                         hint="pass --calibration DIR_OR_CSV with a few hundred real face photos")
    if quantize and calibration_limit < MIN_CALIBRATION_FACES:
        raise InputError(f"--calibration-limit {calibration_limit} is too small; int8 needs at least "
                         f"{MIN_CALIBRATION_FACES} calibration faces (a few hundred recommended)")
    if calibration is not None and not quantize:
        log.warning("--calibration is only used with --quantize int8; ignoring it")
    if input_size is not None and input_size < 8:
        raise InputError(f"--input-size must be >= 8, got {input_size}")

    out_dir = Path(out_dir)
    precisions = ["float32"] + (["int8"] if quantize else [])
    outputs = {p: out_dir / ARTIFACT_NAMES[p] for p in precisions}
    manifest_path = out_dir / MANIFEST_NAME
    created_dir = not out_dir.exists()
    check_outputs_free([*outputs.values(), manifest_path], overwrite)

    try:
        loaded = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
        ensure_writable_dir(out_dir)
        result = _export_loaded(loaded, out_dir, outputs, manifest_path, quantize, calibration, calibration_limit,
                                input_size, progress, seed)
    except BaseException:
        # Leave nothing behind: a folder this call created and that is still empty goes too.
        if created_dir and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise

    # With --overwrite, an artifact from an earlier export that this one did not produce would no longer match the
    # manifest beside it: remove it rather than leave a folder that contradicts itself.
    for precision, name in ARTIFACT_NAMES.items():
        stale = out_dir / name
        if precision not in outputs and stale.exists():
            stale.unlink()
            result.removed_stale.append(str(stale))
            log.warning("removed %s from an earlier export (not part of this one)", stale)
    result.total_seconds = time.perf_counter() - started
    result.process_peak_rss_bytes = process_peak_rss()
    return result


def _export_loaded(loaded: "LoadedCheckpoint", out_dir: Path, outputs: dict[str, Path], manifest_path: Path,
                   quantize: str | None, calibration: str | Path | None, calibration_limit: int,
                   input_size: int | None, progress: bool, seed: int) -> ExportResult:
    import torch

    from toolkit.data.faces import load_face_crops
    from toolkit.io import write_json_atomic
    from toolkit.models.face_model import EmbeddingModel

    model = loaded.model
    spec = model.spec if input_size is None else model.spec.replace(input_size=input_size)
    # Not embedding_model_from(): that calls .eval(), which would hide a model left in training mode.
    module = EmbeddingModel(model.backbone, spec)
    module.training = model.training
    refuse_training_mode(module)
    sample = sample_input(spec)
    try:
        with torch.no_grad():
            probe = module(sample)
    except RuntimeError as exc:
        raise InputError(f"the {spec.backbone} backbone cannot run at input size {spec.input_size}: "
                         f"{_first_line(exc)}", hint="choose a larger --input-size") from None
    if tuple(probe.shape) != (1, spec.embedding_dim):
        raise ExportFailed(f"the embedding model outputs {tuple(probe.shape)}, expected (1, {spec.embedding_dim})")

    faces = None
    calibration_info: dict[str, Any] | None = None
    if quantize:
        try:
            crops = load_face_crops(calibration, spec, limit=calibration_limit, seed=seed, progress=progress,
                                    min_faces=MIN_CALIBRATION_FACES)
        except NoFacesError as exc:
            raise NoFacesError(f"not enough calibration faces for int8: {exc.message}",
                               hint=f"int8 needs at least {MIN_CALIBRATION_FACES} real face photos, "
                                    "a few hundred recommended") from None
        if len(crops) < WARN_CALIBRATION_FACES:
            log.warning("only %d calibration faces; int8 activation ranges are more reliable with %d or more",
                        len(crops), WARN_CALIBRATION_FACES)
        faces = crops.images
        calibration_info = {
            "source": str(calibration),
            "faces": len(crops),
            "rejected": len(crops.rejects),
            "limit": calibration_limit,
            "seed": seed,
            "crops_sha256": _array_sha256(faces),
        }

    artifacts: dict[str, ArtifactResult] = {}
    folded_blocks = 0
    with contextlib.ExitStack() as stack:
        # Entered first, so it is renamed last: the manifest never points at a file that is not there yet.
        manifest_tmp = stack.enter_context(atomic_path(manifest_path))
        tmp_paths = {p: stack.enter_context(atomic_path(path)) for p, path in outputs.items()}

        with PeakRss() as rss:
            t0 = time.perf_counter()
            log.info("converting %s to float32 TFLite", spec.backbone)
            convert_float32(module, sample, tmp_paths["float32"], progress=progress)
            _check_loadable(tmp_paths["float32"], spec)
            seconds = time.perf_counter() - t0
        artifacts["float32"] = _artifact("float32", outputs["float32"], tmp_paths["float32"], seconds, rss.peak)

        if quantize:
            with PeakRss() as rss:
                t0 = time.perf_counter()
                folded, folded_blocks, fold_diff = fold_for_int8(module, faces)
                log.info("folded %d residual scales (max float embedding change %.2g); quantising to int8 on %d "
                         "faces", folded_blocks, fold_diff, len(faces))
                quant_info = quantize_int8_static(folded, sample, faces, tmp_paths["int8"], progress=progress)
                _check_loadable(tmp_paths["int8"], spec)
                seconds = time.perf_counter() - t0
            art = _artifact("int8", outputs["int8"], tmp_paths["int8"], seconds, rss.peak)
            if art.info.get("hybrid_int8"):
                raise ExportFailed("the int8 model came out dynamic-range (float activations); refusing to ship it")
            art.info["quantization"] = {
                "method": "pt2e-static",
                "weights": "int8 per-channel symmetric",
                "activations": "int8 per-tensor affine (histogram observer)",
                "fused_conv_relu6": quant_info["fused_conv_relu6"],
                "float_layers": [],
                "io": "float32",
                "folded_residual_scales": folded_blocks,
                "fold_max_abs_diff": fold_diff,
                "calibration": calibration_info,
            }
            artifacts["int8"] = art

        manifest = build_manifest(loaded, spec, artifacts)
        from toolkit.manifest import finalize_export  # contract into each .tflite, then its final sha256 and size
        finalize_export(manifest, artifacts, tmp_paths)
        write_json_atomic(manifest_tmp, manifest)
        _make_readable(manifest_tmp)
    for precision, art in artifacts.items():
        log.info("wrote %s (%.1f MiB, %.1f s)", art.path, art.size_bytes / 2**20, art.seconds)
    return ExportResult(out_dir=out_dir, manifest_path=manifest_path, spec=spec, artifacts=artifacts,
                        manifest=manifest, calibration_faces=0 if faces is None else len(faces),
                        folded_blocks=folded_blocks)


def _artifact(precision: str, final: Path, tmp: Path, seconds: float, peak: int) -> ArtifactResult:
    _make_readable(tmp)
    info: dict[str, Any] = {"precision": precision}
    size = tmp.stat().st_size
    digest = sha256_file(tmp)
    info.update(inspect_artifact(tmp))
    info.update({"sha256": digest, "size_bytes": size, "export_seconds": round(seconds, 2),
                 "export_peak_rss_mib": round(peak / 2**20, 1)})
    return ArtifactResult(precision, final, size, digest, seconds, peak, info)


def _make_readable(path: Path) -> None:
    """Temp files are created 0600; a model others copy into an app gets the usual umask-derived mode."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def _array_sha256(arr: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def build_manifest(loaded: "LoadedCheckpoint", spec: ModelSpec, artifacts: dict[str, ArtifactResult]) -> dict:
    """The export's manifest: ``spec`` at the top level (the embedders read exactly that key)."""
    meta = loaded.meta
    return {
        "format": EXPORT_FORMAT,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "spec": spec.to_dict(),
        "embedding_dim": spec.embedding_dim,
        "input": {"shape": [1, spec.input_size, spec.input_size, 3], "dtype": "float32", "layout": "NHWC",
                  "channel_order": spec.channel_order, "value_range": list(spec.value_range),
                  "normalization": "in-graph: (x - mean) / std"},
        "output": {"shape": [1, spec.embedding_dim], "dtype": "float32", "l2_normalized": spec.l2_normalized},
        "source_checkpoint": {
            "path": str(loaded.path),
            "sha256": loaded.sha256,
            "backbone": meta.spec.backbone,
            "trained_input_size": meta.spec.input_size,
            "num_classes": meta.num_classes,
            "weights_source": meta.weights_source,
            "epoch": meta.epoch,
            "config_hash": meta.config_hash,
        },
        "tools": tool_versions(),
        "artifacts": {art.path.name: art.info for art in artifacts.values()},
    }


# --------------------------------------------------------------------------------------------------------------------
# reading exports back (info, parity)
# --------------------------------------------------------------------------------------------------------------------
def artifact_entry(tflite_path: str | Path) -> dict[str, Any] | None:
    """This file's entry in the manifest beside it (None without a manifest or entry)."""
    from toolkit.embedders import read_manifest_for

    manifest = read_manifest_for(tflite_path)
    if not manifest:
        return None
    return (manifest.get("artifacts") or {}).get(Path(tflite_path).name)


def describe_path(path: str | Path) -> dict[str, Any]:
    """What a checkpoint, a .tflite or an export folder contains (for ``ftk info``)."""
    from toolkit.embedders import read_manifest_for

    path = Path(path)
    if not path.exists():
        raise InputError(f"not found: {path}")
    if path.is_dir():
        manifest_file = path / MANIFEST_NAME
        if not manifest_file.is_file():
            raise InputError(f"{path} is a folder without {MANIFEST_NAME}; not an ftk export",
                             hint="give a checkpoint, a .tflite or an export folder")
        from toolkit.io import read_json

        manifest = read_json(manifest_file, "export manifest")
        files = {}
        for name, entry in (manifest.get("artifacts") or {}).items():
            file = path / name
            files[name] = {"present": file.is_file(),
                           "sha256_ok": file.is_file() and sha256_file(file) == entry.get("sha256")}
        return {"kind": "export", "path": str(path), "manifest": manifest, "files": files}
    if path.suffix.lower() == ".tflite":
        from toolkit.embedders import load_interpreter

        inspected = _inspect(path)  # bounds-checked: a truncated or foreign file gets a clear error
        load_interpreter(path, num_threads=1)
        manifest = read_manifest_for(path)
        entry = (manifest or {}).get("artifacts", {}).get(path.name) if manifest else None
        return {"kind": "tflite", "path": str(path), "size_bytes": path.stat().st_size,
                "sha256": sha256_file(path), "inspect": inspected,
                "spec": (manifest or {}).get("spec"), "manifest_entry": entry,
                "matches_manifest": None if entry is None else entry.get("sha256") == sha256_file(path)}
    from toolkit.checkpoint import read_checkpoint_meta

    meta = read_checkpoint_meta(path)
    return {"kind": "checkpoint", "path": str(path), "size_bytes": path.stat().st_size,
            "sha256": sha256_file(path), "meta": meta.to_dict()}


def _inspect(path: Path) -> dict[str, Any]:
    from toolkit.tflite.inspect import inspect_tflite

    return inspect_tflite(path).to_dict()
