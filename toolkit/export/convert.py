"""Conversion building blocks, usable on their own (tests, benchmarks): float32 conversion, the exact folds
shared by every precision, and the checks and inspection of a written file."""

from __future__ import annotations

import contextlib
import copy
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from toolkit import native_logs
from toolkit.embedders import load_interpreter
from toolkit.errors import InputError, ToolkitError
from toolkit.export.monitoring import litert_progress
from toolkit.export.results import ExportFailed
from toolkit.spec import ModelSpec
from toolkit.tflite.inspect import inspect_tflite

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("toolkit.export")  # one logger for the stage: log lines keep the name they always had


# Folding is exact in real arithmetic; in float32 it moves a rounding step, nothing more.
FOLD_TOLERANCE = 1e-4


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
            write_converted(edge, path)
    except ToolkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - converter errors come in many types
        log.debug("float32 conversion failed", exc_info=True)
        raise ExportFailed(f"litert-torch could not convert the model to float32: {_first_line(exc)}",
                           hint="run with -vv for the full traceback") from exc


def write_converted(edge: Any, path: str | Path) -> None:
    """The converted model's bytes into ``path``, written here. ``edge.export(path)`` writes through LLVM's file
    stream, which on a full disk prints "LLVM ERROR: IO failure on output stream" and calls exit(1): no Python error
    to catch, no cleanup, exit 1 ("a check failed") instead of "no space left". Here ENOSPC is an OSError."""
    Path(path).write_bytes(edge.model_content())


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
    info = inspect_tflite(path)
    data = info.to_dict()
    # The file is still at its temp name here; hashes/sizes are added by the caller under the final name.
    for key in ("path", "sha256", "size_bytes"):
        data.pop(key, None)
    return data


def _check_loadable(path: Path, spec: ModelSpec) -> None:
    """The written file must load in LiteRT with the contract's input and output shapes."""
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
