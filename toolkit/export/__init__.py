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

Modules: :mod:`~toolkit.export.stage` (:func:`export_model`, the stage), :mod:`~toolkit.export.convert` (float32
conversion, folds, file checks), :mod:`~toolkit.export.int8_quantizer` (the int8 recipe and its annotators),
:mod:`~toolkit.export.calibration`, :mod:`~toolkit.export.int8`, :mod:`~toolkit.export.float16`,
:mod:`~toolkit.export.manifest_writer`, :mod:`~toolkit.export.results`, :mod:`~toolkit.export.monitoring` and
:mod:`~toolkit.export.describe` (reading exports back). Every public name is importable from ``toolkit.export``.
"""

from __future__ import annotations

from toolkit.export.calibration import (
    CALIBRATION_BATCH, MIN_CALIBRATION_FACES, WARN_CALIBRATION_FACES, CalibrationPlan, _observers,
    prepare_and_calibrate,
)
from toolkit.export.convert import (
    FOLD_TOLERANCE, convert_float32, fold_for_export, inspect_artifact, refuse_training_mode, sample_input,
)
from toolkit.export.describe import artifact_entry, describe_path
from toolkit.export.float16 import FLOAT16_RECIPE, convert_float16
from toolkit.export.int8 import float_ops_of, module_path_of_tensor, quantised_kept_layers, quantize_int8_static
from toolkit.export.int8_quantizer import _ftk_quantizer
from toolkit.export.manifest_writer import EXPORT_FORMAT, build_manifest, finalize_export
from toolkit.export.monitoring import PeakRss, litert_progress, process_peak_rss
from toolkit.export.results import ArtifactResult, ExportFailed, ExportResult
from toolkit.export.stage import ARTIFACT_NAMES, QUANTIZE_CHOICES, export_model, parse_quantize
from toolkit.versions import tool_versions  # its home until the split; reference sets and reports use it too

__all__ = [
    "ARTIFACT_NAMES", "CALIBRATION_BATCH", "EXPORT_FORMAT", "FLOAT16_RECIPE", "FOLD_TOLERANCE",
    "MIN_CALIBRATION_FACES", "QUANTIZE_CHOICES", "WARN_CALIBRATION_FACES", "ArtifactResult", "CalibrationPlan",
    "ExportFailed", "ExportResult", "PeakRss", "_ftk_quantizer", "_observers", "artifact_entry", "build_manifest",
    "convert_float16", "convert_float32", "describe_path", "export_model", "finalize_export", "float_ops_of", "fold_for_export",
    "inspect_artifact", "litert_progress", "module_path_of_tensor", "parse_quantize", "prepare_and_calibrate",
    "process_peak_rss", "quantised_kept_layers", "quantize_int8_static", "refuse_training_mode", "sample_input",
    "tool_versions",
]
