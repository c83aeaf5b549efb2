"""Full-integer int8 (PT2E static) conversion, and what the converted file says about it: which ops still
compute in float, and whether a --keep-float layer came out int8 anyway."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit import native_logs
from toolkit.export.calibration import prepare_and_calibrate
from toolkit.export.convert import _converter_errors, refuse_training_mode, write_converted
from toolkit.export.int8_quantizer import _ftk_quantizer
from toolkit.export.monitoring import litert_progress

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("toolkit.export")  # one logger for the stage: log lines keep the name they always had


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
            write_converted(edge, path)
        convert_seconds = time.perf_counter() - t0
    return {"fused_conv_relu6": quantizer.fused_relu6, "integer_adds": quantizer.integer_adds,
            "float_nodes": quantizer.float_nodes, "calibration_batch": calib["batch_size"],
            "calibrate_seconds": calib["seconds"], "convert_seconds": round(convert_seconds, 2)}


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
