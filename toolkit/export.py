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

from toolkit import __version__, native_logs
from toolkit.constants import DEFAULT_CALIBRATION_FACES, DEFAULT_PARITY_FACES, DEFAULT_PICK, MANIFEST_NAME
from toolkit.constants import PARITY_SAMPLE_NAME as SAMPLE_NAME
from toolkit.errors import InputError, NoFacesError, ToolkitError
from toolkit.io import atomic_path, check_outputs_free, ensure_writable_dir, sha256_file
from toolkit.spec import ModelSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

    from toolkit.checkpoint import LoadedCheckpoint

log = logging.getLogger(__name__)

EXPORT_FORMAT = "ftk.export/1"
ARTIFACT_NAMES = {"float32": "model_float32.tflite", "int8": "model_int8.tflite",
                  "float16": "model_float16.tflite"}
QUANTIZE_CHOICES = ("int8", "float16")
MIN_CALIBRATION_FACES = 16
WARN_CALIBRATION_FACES = 100
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
    stages: dict[str, float] = field(default_factory=dict)  # load, crops, fold, calibrate, convert, check (s)

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
            "stages_seconds": {k: round(v, 2) for k, v in self.stages.items()},
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
    """litert-torch's own task log (``[START] ... [ DONE]`` on stdout) only with ``-v`` (and ``enabled``); the
    converter's C++/absl lines on file descriptor 2 hidden unless ``-v`` (toolkit.native_logs); on failure the tail
    of what was hidden is logged."""
    with native_logs.quiet_import():
        import litert_torch

    config = litert_torch._config.config
    before = config.show_progress
    config.show_progress = enabled and native_logs.verbose()
    try:
        with native_logs.native_stderr_hidden("the converter"):
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
    with native_logs.quiet_import():
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


def _ftk_quantizer(quantization_config: Any, float_layers: tuple[str, ...] = ()) -> Any:
    """litert-torch's PT2EQuantizer plus what it lacks for a fully integer MobileFaceNet.

    - **conv -> ReLU6** (``aten.hardtanh(0, 6)``) as one fused pattern. The stock quantizer fuses conv + ReLU but
      not conv + ReLU6: it observes the conv output *before* the clamp and lets ReLU6 share that range, so the int8
      scale spans the whole pre-activation range. Annotated like conv + ReLU (no observer between them, one on the
      clamp's output), the range is [0, 6] at most and the converter fuses RELU6 into CONV_2D / DEPTHWISE_CONV_2D
      (measured mean cosine to PyTorch 0.965 -> 0.995 on MobileFaceNet, docs/export.md).
    - **residual add** (``aten.add.Tensor`` of two tensors). The stock ``add`` annotator finds adds through
      ``source_fn_stack``, which ``torch.export`` (non-strict, torch >= 2.5) no longer records, so every residual
      ADD stayed float between a DEQUANTIZE and a QUANTIZE. Annotated here directly on the aten node (both inputs
      and the output observed), it becomes an int8 ADD.
    - **layers kept in float** (``float_layers``, module names inside the backbone, e.g. ``conv3``): their nodes
      are marked annotated without any quantisation spec before any annotator runs, so none claims them; the
      converter puts DEQUANTIZE before and QUANTIZE after them.
    """
    import torch
    from torch.fx import Node

    with native_logs.quiet_import():
        from litert_torch.quantize import pt2e_quantizer_utils as qutils
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer

    conv_ops = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)
    clamp_ops = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)
    add_ops = (torch.ops.aten.add.Tensor, torch.ops.aten.add_.Tensor)
    relu_ops = (torch.ops.aten.relu.default, torch.ops.aten.relu_.default)
    prefixes = tuple(f"backbone.{name}" for name in float_layers)

    def in_float_layer(node: Node) -> bool:
        for path, _ in (node.meta.get("nn_module_stack") or {}).values():
            if any(path == p or path.startswith(p + ".") for p in prefixes):
                return True
        return False

    def keep_float(model: "torch.fx.GraphModule") -> int:
        count = 0
        for node in model.graph.nodes:
            if node.op == "call_function" and prefixes and in_float_layer(node):
                node.meta["quantization_annotation"] = qutils.QuantizationAnnotation(_annotated=True)
                count += 1
        return count

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

    def annotate_add(model: "torch.fx.GraphModule", config: Any) -> int:
        count = 0
        for node in model.graph.nodes:
            if node.op != "call_function" or node.target not in add_ops or len(node.args) < 2:
                continue
            a, b = node.args[0], node.args[1]
            # Tensor + tensor only: the in-graph normalisation's constants and scalar adds stay as they are.
            if not (isinstance(a, Node) and isinstance(b, Node)) or "get_attr" in (a.op, b.op):
                continue
            if qutils._is_annotated([node]):
                continue
            # add -> ReLU (InceptionResnetV1's blocks) already came out as an int8 ADD without this, and observing
            # it here measured worse parity there (mean cosine 0.985 -> 0.975 on 200 faces): leave that pattern.
            if node.users and all(u.target in relu_ops for u in node.users):
                continue
            node.meta["quantization_annotation"] = qutils.QuantizationAnnotation(
                input_qspec_map={a: qutils.get_input_act_qspec(config), b: qutils.get_input_act_qspec(config)},
                output_qspec=qutils.get_output_act_qspec(config), _annotated=True)
            count += 1
        return count

    class FtkQuantizer(PT2EQuantizer):
        fused_relu6 = 0
        integer_adds = 0
        float_nodes = 0

        def annotate(self, model: "torch.fx.GraphModule") -> "torch.fx.GraphModule":
            self.float_nodes = keep_float(model)
            # Before the stock patterns, so its "conv" annotator no longer claims these convs.
            self.fused_relu6 = annotate_conv_relu6(model, self.global_config)
            self.integer_adds = annotate_add(model, self.global_config)
            return super().annotate(model)

    return FtkQuantizer().set_global(quantization_config)


CALIBRATION_BATCH = 32


def _observers(prepared: "torch.fx.GraphModule") -> list[tuple[str, Any, str, int]]:
    """Each observer call in a prepared graph, in graph order: (attribute name, module, what it observes, group).

    ``group`` numbers the distinct observer objects: a shared quantisation spec makes several attribute names
    refer to one observer, and that sharing has to be the same in two graphs for their observers to correspond.
    """
    from torchao.quantization.pt2e import ObserverBase

    out, groups = [], {}
    for node in prepared.graph.nodes:
        if node.op != "call_module":
            continue
        module = prepared.get_submodule(str(node.target))
        if not isinstance(module, ObserverBase):
            continue
        src = node.args[0] if node.args else None
        group = groups.setdefault(id(module), len(groups))
        out.append((str(node.target), module, str(getattr(src, "target", src)), group))
    return out


def prepare_and_calibrate(module: "nn.Module", sample: "torch.Tensor", calibration_faces: np.ndarray,
                          quantizer: Any, batch_size: int = CALIBRATION_BATCH, progress: bool = False,
                          ) -> tuple["torch.fx.GraphModule", dict[str, Any]]:
    """The batch-1 PT2E-prepared graph with every observer filled from ``calibration_faces``.

    Observation runs in batches on a second graph exported with a dynamic batch dimension (the same module, the
    same quantizer, so the same observers in the same order); their state is then moved into the batch-1 graph
    the app needs. With ``batch_size`` 1, or if the two graphs' observers do not line up, it calibrates the
    batch-1 graph face by face. Returns (prepared graph, {"batch_size", "batched", "seconds"}).
    """
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    t0 = time.perf_counter()
    faces = calibration_faces
    single = prepare_pt2e(torch.export.export(module, (sample,)).module(), quantizer)
    counts = (quantizer.fused_relu6, quantizer.integer_adds, quantizer.float_nodes)
    batched = None
    if batch_size > 1 and len(faces) > 1:
        try:
            n = min(batch_size, len(faces))
            example = sample.expand(max(n, 2), *sample.shape[1:]).contiguous()
            dims = {"x": {0: torch.export.Dim("batch", min=1, max=max(batch_size, 2))}}
            exported = torch.export.export(module, (example,), dynamic_shapes=dims).module()
            batched = prepare_pt2e(exported, quantizer)
        except Exception as exc:  # noqa: BLE001 - any tracing failure: fall back to batch 1
            log.warning("int8: no batched calibration graph (%s); calibrating face by face", _first_line(exc))
            batched = None
    if batched is not None:
        obs_b, obs_1 = _observers(batched), _observers(single)
        if [(n, t, g) for n, _, t, g in obs_b] != [(n, t, g) for n, _, t, g in obs_1]:
            log.warning("int8: the batched graph's observers differ from the batch-1 graph's; calibrating face "
                        "by face")
            batched = None
    log.debug("int8: graphs prepared in %.1f s", time.perf_counter() - t0)
    step = batch_size if batched is not None else 1
    target = batched if batched is not None else single
    starts: Any = range(0, len(faces), step)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="calibrating int8", unit="batch" if step > 1 else "face")
    with torch.no_grad():
        for i in starts:
            target(torch.from_numpy(faces[i : i + step].astype(np.float32)))
    if batched is not None:
        for name, observer, _, _ in obs_b:  # same names, same sharing: the filled observers replace the empty ones
            setattr(single, name, observer)
    quantizer.fused_relu6, quantizer.integer_adds, quantizer.float_nodes = counts
    return single, {"batch_size": step, "batched": batched is not None,
                    "seconds": round(time.perf_counter() - t0, 2)}


def quantize_int8_static(module: "nn.Module", sample: "torch.Tensor", calibration_faces: np.ndarray,
                         path: str | Path, progress: bool = False, float_layers: tuple[str, ...] = (),
                         batch_size: int = 1) -> dict[str, Any]:
    """Full-integer int8 via litert-torch's PT2E quantizer, calibrated on ``calibration_faces`` (uint8 NHWC).

    Weights: int8 per-channel symmetric. Activations: int8 per-tensor (histogram observers), with conv + ReLU6
    fused and residual adds integer (see :func:`_ftk_quantizer`); ``float_layers`` (backbone module names) stay
    float. I/O: float32. Returns what the quantiser did, for the manifest, with the calibrate/convert seconds.
    """
    with native_logs.quiet_import():
        import litert_torch
        from litert_torch.quantize.pt2e_quantizer import get_symmetric_quantization_config
        from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    refuse_training_mode(module)
    quantizer = _ftk_quantizer(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False),
                               tuple(float_layers))
    with _converter_errors("PT2E int8 quantisation/conversion failed"):
        prepared, calib = prepare_and_calibrate(module, sample, calibration_faces, quantizer, batch_size, progress)
        log.info("int8: %d conv + ReLU6 pairs fused, %d residual adds integer, %d nodes kept float",
                 quantizer.fused_relu6, quantizer.integer_adds, quantizer.float_nodes)
        t0 = time.perf_counter()
        converted = convert_pt2e(prepared, fold_quantize=False)
        # The graph was captured from an eval-mode module; an exported GraphModule still carries training=True,
        # which litert-torch warns about. Mark it eval the exported-model way (dropout/BN patterns) and clear the flag.
        move_exported_model_to_eval(converted)
        for submodule in converted.modules():
            submodule.training = False
        with litert_progress(progress):
            edge = litert_torch.convert(converted, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
            edge.export(str(path))
        convert_seconds = time.perf_counter() - t0
    return {"fused_conv_relu6": quantizer.fused_relu6, "integer_adds": quantizer.integer_adds,
            "float_nodes": quantizer.float_nodes, "calibration_batch": calib["batch_size"],
            "calibrate_seconds": calib["seconds"], "convert_seconds": round(convert_seconds, 2)}


@contextlib.contextmanager
def _converter_errors(message: str) -> Iterator[None]:
    """Converter/quantiser exceptions (many types) -> ExportFailed("MESSAGE: first line"); ftk's own pass."""
    try:
        yield
    except ToolkitError:
        raise
    except Exception as exc:  # noqa: BLE001
        log.debug("%s", message, exc_info=True)
        raise ExportFailed(f"{message}: {_first_line(exc)}", hint="run with -vv for the full traceback") from exc


_DEQUANTIZE_CODE = 6  # tflite BuiltinOperator.DEQUANTIZE
FLOAT16_RECIPE = [{
    "regex": ".*",
    "operation": "*",
    "algorithm_key": "float_casting",
    "op_config": {
        "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
        "compute_precision": "FLOAT",
        "explicit_dequantize": True,
    },
}]


def convert_float16(float32_path: str | Path, path: str | Path) -> None:
    """float16 weights, float32 compute and I/O, from the float32 file (no second conversion).

    ai-edge-quantizer's ``float_casting`` stores the CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED weights as
    float16 with an explicit DEQUANTIZE to float32 in front of each: the standard TFLite float16 layout, which
    the CPU kernels run in float32 and the GPU delegate in float16.
    """
    with _converter_errors("ai-edge-quantizer could not make the float16 model"):
        with native_logs.quiet_import():
            from ai_edge_litert.tools import flatbuffer_utils
            from ai_edge_quantizer import quantizer as aeq

        q = aeq.Quantizer(str(float32_path), FLOAT16_RECIPE)
        result = q.quantize(enable_progress_bar=False, enable_progress_report=False)
        # ai-edge-quantizer always writes the weights as external buffers (after the flatbuffer), which needs
        # TFLite 2.14; the app runs 2.12. Reading resolves them; writing again puts them inside the flatbuffer.
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(result.quantized_model))
        for opcode in model.operatorCodes:
            code = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
            if code == _DEQUANTIZE_CODE:
                # DEQUANTIZE from float16 is op version 3 in TFLite's versioning (the quantizer writes 1).
                opcode.version = max(opcode.version, 3)
        Path(path).write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))


def fold_for_export(module: "nn.Module", check_faces: np.ndarray) -> tuple["nn.Module", dict[str, Any]]:
    """A copy of ``module`` with exact folds applied, shared by every precision of one export.

    - InceptionResnetV1: the residual scales into the preceding 1x1 convs (:func:`fold_residual_scales`);
    - MobileFaceNet: the final BatchNorm1d into ``conv3`` (:func:`fold_final_batchnorm`).

    Returns (folded copy, {"residual_scales", "final_batchnorm", "max_abs_diff"}); refuses a fold that changes
    the float embeddings by more than rounding (checked on up to 8 of ``check_faces``).
    """
    import torch

    from toolkit.models.inception_resnet import fold_residual_scales
    from toolkit.models.mobilefacenet import fold_final_batchnorm

    folded = copy.deepcopy(module)
    scales = fold_residual_scales(folded)
    bns = fold_final_batchnorm(folded)
    max_diff = 0.0
    if (scales or bns) and len(check_faces):
        x = torch.from_numpy(np.asarray(check_faces[:8]).astype(np.float32))
        with torch.no_grad():
            max_diff = float((module(x) - folded(x)).abs().max())
        if not max_diff <= FOLD_TOLERANCE:  # also catches NaN
            raise ExportFailed(f"folding changed the float embeddings by {max_diff:.3g} "
                               f"(> {FOLD_TOLERANCE}); refusing to export a different model")
    return folded, {"residual_scales": scales, "final_batchnorm": bns, "max_abs_diff": max_diff}


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
    from toolkit.checkpoint import LoadedCheckpoint, load_checkpoint

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
    if input_size is not None and input_size < 8:
        raise InputError(f"--input-size must be >= 8, got {input_size}")

    out_dir = Path(out_dir)
    precisions = ["float32"] + extra
    outputs = {p: out_dir / ARTIFACT_NAMES[p] for p in precisions}
    manifest_path = out_dir / MANIFEST_NAME
    created_dir = not out_dir.exists()
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

    # With --overwrite, an artifact from an earlier export that this one did not produce would no longer match the
    # manifest beside it: remove it rather than leave a folder that contradicts itself.
    for precision, name in ARTIFACT_NAMES.items():
        stale = out_dir / name
        if precision not in outputs and stale.exists():
            stale.unlink()
            result.removed_stale.append(str(stale))
            log.warning("removed %s from an earlier export (not part of this one)", stale)
    stale_sample = out_dir / SAMPLE_NAME
    if "parity_sample" not in result.manifest and stale_sample.exists():
        stale_sample.unlink()
        result.removed_stale.append(str(stale_sample))
        log.warning("removed %s from an earlier export (this one recorded no parity sample)", stale_sample)
    result.total_seconds = time.perf_counter() - started
    result.process_peak_rss_bytes = process_peak_rss()
    return result


def _disk_full(exc: BaseException, folder: Path) -> bool:
    import errno

    from toolkit.io import free_bytes

    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
    try:
        return free_bytes(folder) < 256 * 1024
    except OSError:
        return False


@dataclass
class CalibrationPlan:
    """Where the int8 calibration faces come from, and how many more to hold out for parity."""

    source: str | Path | None
    limit: int
    seed: int
    pick: str
    parity_faces: int


def _read_calibration(plan: CalibrationPlan, spec: ModelSpec, out_dir: Path, progress: bool):
    """(calibration crops, held-out crops, image digests, the manifest's calibration summary)."""
    from toolkit.data.faces import load_face_crops
    from toolkit.held_out import split_held_out

    try:
        crops = load_face_crops(plan.source, spec, limit=plan.limit + plan.parity_faces, seed=plan.seed,
                                progress=progress, min_faces=MIN_CALIBRATION_FACES, pick=plan.pick)
    except NoFacesError as exc:
        raise NoFacesError(f"not enough calibration faces for int8: {exc.message}",
                           hint=f"int8 needs at least {MIN_CALIBRATION_FACES} real face photos, "
                                "a few hundred recommended") from None
    calib, held, digests = split_held_out(crops, plan.limit, plan.parity_faces, plan.seed)
    if len(calib) < WARN_CALIBRATION_FACES:
        log.warning("only %d calibration faces; int8 activation ranges are more reliable with %d or more",
                    len(calib), WARN_CALIBRATION_FACES)
    if plan.parity_faces and not len(held):
        log.warning("%d faces read, none to spare beyond --calibration-limit %d for a held-out parity sample; "
                    "parity-check will need --faces", len(crops), plan.limit)
    info = {"source": _beside_or_absolute(plan.source, out_dir), "faces": len(calib), "held_out_for_parity": len(held),
            "rejected": len(crops.rejects), "limit": plan.limit, "seed": plan.seed, "pick": plan.pick,
            "crops_sha256": _array_sha256(calib.images)}
    return calib, held, dict(zip(crops.paths, digests)), info


def _export_loaded(loaded: "LoadedCheckpoint", out_dir: Path, outputs: dict[str, Path], manifest_path: Path,
                   calibration: CalibrationPlan, input_size: int | None, progress: bool,
                   keep_float: tuple[str, ...], calibration_batch: int, load_seconds: float) -> ExportResult:
    import shutil
    import tempfile

    import torch

    from toolkit.io import check_free_space, no_space_error, write_json_atomic
    from toolkit.models.face_model import EmbeddingModel
    from toolkit.reference import synthetic_inputs

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
    work = Path(tempfile.mkdtemp(prefix=".ftk-export.", suffix=".tmp", dir=out_dir))
    try:
        with contextlib.ExitStack() as stack:
            # Entered first, so it is renamed last: the manifest never points at a file that is not there yet.
            manifest_tmp = stack.enter_context(atomic_path(manifest_path))
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
            sample_tmp = _stage_parity_sample(manifest, held_out, work, source)
            from toolkit.manifest import finalize_export  # contract into each .tflite, then its final sha256 and size
            finalize_export(manifest, artifacts, tmp_paths)
            write_json_atomic(manifest_tmp, manifest)
            _make_readable(manifest_tmp)
            for precision, art in artifacts.items():  # into place; the manifest follows when the stack closes
                os.replace(tmp_paths[precision], outputs[precision])
            if sample_tmp is not None:
                os.replace(sample_tmp, out_dir / SAMPLE_NAME)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for precision, art in artifacts.items():
        log.info("wrote %s (%.1f MiB, %.1f s)", art.path, art.size_bytes / 2**20, art.seconds)
    return ExportResult(out_dir=out_dir, manifest_path=manifest_path, spec=spec, artifacts=artifacts,
                        manifest=manifest, calibration_faces=0 if faces is None else len(faces),
                        folded_blocks=fold["residual_scales"], stages=stages)


def _stage_parity_sample(manifest: dict[str, Any], held_out, work: Path, source) -> Path | None:
    """Write the held-out parity faces into the work folder and name them in the manifest (None: no sample)."""
    if held_out is None:
        return None
    from toolkit.held_out import manifest_entry, write_sample

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


# Why an op of an int8 graph still computes in float.
_FLOAT_REASONS = {
    "SUB": "in-graph input normalisation (x - mean) on the float32 input, before the single QUANTIZE",
    "DEQUANTIZE": "back to float for the L2-normalisation tail (and the float32 output)",
    "MUL": "L2-normalisation tail (x * x)",
    "SUM": "L2-normalisation tail (sum of squares)",
    "POW": "L2-normalisation tail (square root)",
    "SQRT": "L2-normalisation tail (square root)",
    "MAXIMUM": "L2-normalisation tail (clamp of the norm at eps)",
    "DIV": "L2-normalisation tail (x / norm)",
    "RESHAPE": "L2-normalisation tail (broadcast of the norm)",
    "BROADCAST_TO": "L2-normalisation tail (broadcast of the norm)",
    "ADD": "float add (not quantised)",
}


def module_path_of_tensor(tensor_name: str) -> str | None:
    """litert-torch names a tensor after its module stack: ``pkg.Class_attr/pkg.Class_attr/...;suffix`` ->
    ``attr.attr`` (the root, the exported wrapper, left out): e.g. ``backbone.features.3.conv.2``."""
    first = tensor_name.split(";", 1)[0]
    parts = first.split("/")
    if len(parts) < 2:
        return None
    names = []
    for segment in parts[1:]:
        cls = segment.rsplit(".", 1)[-1]
        if "_" not in cls:
            return None
        names.append(cls.split("_", 1)[1])
    return ".".join(names)


def quantised_kept_layers(path: Path, keep_float: tuple[str, ...]) -> list[str]:
    """The --keep-float layers whose ops still came out int8 in the converted file (a safety check on the
    converter, which could fold a dq -> float op -> q pattern back into the int8 graph; not seen so far)."""
    with native_logs.quiet_import():
        from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    hit: set[str] = set()
    for op in interpreter._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "MEAN"):
            continue
        for index in op["outputs"]:
            t = tensors.get(index)
            module = module_path_of_tensor(t["name"]) if t else None
            if not module or np.dtype(t["dtype"]) != np.int8:
                continue
            for layer in keep_float:
                prefix = f"backbone.{layer}"
                if module == prefix or module.startswith(prefix + "."):
                    hit.add(layer)
    return [layer for layer in keep_float if layer in hit]


def float_ops_of(path: Path, keep_float: tuple[str, ...] = ()) -> dict[str, Any]:
    """The ops of a quantised .tflite that compute in float32, counted, each with why (for the manifest)."""
    with native_logs.quiet_import():
        from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    counts: dict[str, int] = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] == "QUANTIZE":
            continue  # float -> int8 at the input edge (or int8 -> int8 requantisation): not float compute
        outs = [tensors[i]["dtype"] for i in op["outputs"] if i >= 0]
        if any(np.dtype(d) == np.float32 for d in outs):
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    out: dict[str, Any] = {}
    for name, n in sorted(counts.items()):
        reason = _FLOAT_REASONS.get(name, "not quantised by the PT2E quantizer")
        if keep_float and name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"):
            reason = f"layer kept in float (--keep-float {','.join(keep_float)})" + (
                f"; or {reason}" if name in _FLOAT_REASONS else "")
        out[name] = {"count": n, "why": reason}
    return out


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


def build_manifest(loaded: "LoadedCheckpoint", spec: ModelSpec, artifacts: dict[str, ArtifactResult],
                   export_info: dict[str, Any] | None = None, out_dir: Path | None = None) -> dict:
    """The export's manifest: ``spec`` at the top level (the embedders read exactly that key). The source
    checkpoint's path is relative to ``out_dir`` (the manifest's folder), so a moved run folder still names it."""
    meta = loaded.meta
    manifest = {
        "format": EXPORT_FORMAT,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "spec": spec.to_dict(),
        "embedding_dim": spec.embedding_dim,
        "input": {"shape": [1, spec.input_size, spec.input_size, 3], "dtype": "float32", "layout": "NHWC",
                  "channel_order": spec.channel_order, "value_range": list(spec.value_range),
                  "normalization": "in-graph: (x - mean) / std"},
        "output": {"shape": [1, spec.embedding_dim], "dtype": "float32", "l2_normalized": spec.l2_normalized},
        "source_checkpoint": {
            "path": _relative_to(loaded.path, out_dir),
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
    if export_info is not None:
        manifest["export"] = export_info
    return manifest


# --------------------------------------------------------------------------------------------------------------------
# reading exports back (info, parity)
# --------------------------------------------------------------------------------------------------------------------
def _relative_to(path: Path | str, folder: Path | None) -> str:
    if folder is None:
        return str(path)
    return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()


def _beside_or_absolute(path: Path | str, out_dir: Path) -> str:
    """Relative to ``out_dir`` when ``path`` lies in the folder that holds it (a run's prepare/faces.csv beside its
    export/: a moved run folder still names it), else absolute (data elsewhere on the machine)."""
    resolved, parent = Path(path).resolve(), Path(out_dir).resolve().parent
    return _relative_to(resolved, out_dir) if resolved.is_relative_to(parent) else str(resolved)


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
