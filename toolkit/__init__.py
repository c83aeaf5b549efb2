"""ftk: a face-embedding model from training to an Android phone.

Importing the package is cheap: torch, litert_torch, ai_edge_litert and facenet_pytorch are imported only inside
the functions that need them, so `ftk --help` answers instantly. The public API below is resolved lazily (PEP 562):
``from toolkit import export_model`` imports :mod:`toolkit.export` only then. See docs/library.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute). Stage functions and the small dataclasses they return; names that would
# shadow a submodule (prepare, train, evaluate, deploy) get a verb-object name.
_API: dict[str, tuple[str, str]] = {
    "ModelSpec": ("toolkit.spec", "ModelSpec"),
    "Embedder": ("toolkit.embedders", "Embedder"),
    "EmbedderOptions": ("toolkit.embedders", "EmbedderOptions"),
    "load_embedder": ("toolkit.embedders", "load_embedder"),
    "contract_for": ("toolkit.manifest", "contract_for"),
    "FaceCrops": ("toolkit.data.faces", "FaceCrops"),
    "crop_images": ("toolkit.data.faces", "crop_images"),
    "load_face_crops": ("toolkit.data.faces", "load_face_crops"),
    "embed_crops": ("toolkit.data.faces", "embed_crops"),
    "prepare_faces": ("toolkit.prepare", "prepare"),
    "PrepareResult": ("toolkit.prepare", "PrepareResult"),
    "TrainConfig": ("toolkit.train", "TrainConfig"),
    "load_train_config": ("toolkit.train", "load_train_config"),
    "train_model": ("toolkit.train", "train"),
    "TrainResult": ("toolkit.train", "TrainResult"),
    "init_checkpoint": ("toolkit.init_checkpoint", "init_checkpoint"),
    "evaluate_embedder": ("toolkit.evaluate", "evaluate"),
    "evaluate_model_file": ("toolkit.evaluate", "evaluate_model_file"),
    "EvaluationResult": ("toolkit.evaluate", "EvaluationResult"),
    "export_model": ("toolkit.export", "export_model"),
    "ExportResult": ("toolkit.export", "ExportResult"),
    "parity_check": ("toolkit.parity", "parity_check"),
    "ParityReport": ("toolkit.parity", "ParityReport"),
    "run_bench": ("toolkit.bench", "run_bench"),
    "BenchResult": ("toolkit.bench", "BenchResult"),
    "deploy_model": ("toolkit.deploy", "deploy"),
    "plan_deploy": ("toolkit.deploy", "plan_deploy"),
    "apply_deploy": ("toolkit.deploy", "apply_deploy"),
    "DeployPlan": ("toolkit.deploy", "DeployPlan"),
    "revert_deploy": ("toolkit.deploy", "revert"),
    "DeployResult": ("toolkit.deploy", "DeployResult"),
    "KotlinPreprocessor": ("toolkit.deploy.kotlin", "KotlinPreprocessor"),
    "compare_images": ("toolkit.compare", "compare_images"),
    "match_probe": ("toolkit.match", "match_probe"),
    "resolve_threshold": ("toolkit.reports", "resolve_threshold"),
    "run_pipeline": ("toolkit.pipeline", "run_pipeline"),
    "PipelineResult": ("toolkit.pipeline", "PipelineResult"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
    module, attribute = _API[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
