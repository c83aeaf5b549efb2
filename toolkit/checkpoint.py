"""The checkpoint format ``ftk train`` writes and ``ftk export`` reads.

One file, loadable with ``torch.load(weights_only=True)`` (no pickle of our own objects):
``{"ftk_format": "ftk.checkpoint/1", "metadata_json": <str>, "state_dict": {name: tensor}}``.
The metadata carries the :class:`~toolkit.spec.ModelSpec`, the class names and the training-config hash.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import __version__
from toolkit.errors import CheckpointError
from toolkit.io import atomic_path, sha256_file
from toolkit.spec import ModelSpec

if TYPE_CHECKING:
    from toolkit.models.face_model import FaceModel

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "ftk.checkpoint/1"


def load_error_reason(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one line (PyTorch's own message goes on to suggest
    ``weights_only=False``, which would run the file's code)."""
    text = str(exc)
    if "Weights only load failed" in text or type(exc).__name__ == "UnpicklingError":
        return "it contains Python objects; refused for safety (only tensors and plain data are loaded)"
    return text.strip().splitlines()[0][:160] if text.strip() else type(exc).__name__


@dataclass
class CheckpointMeta:
    spec: ModelSpec
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    config_hash: str | None = None
    weights_source: str | None = None  # e.g. "random", "random+bn-calibrated", a pretrained file's sha256
    epoch: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    ftk_version: str = __version__
    torch_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "config_hash": self.config_hash,
            "weights_source": self.weights_source,
            "epoch": self.epoch,
            "metrics": self.metrics,
            "created_at": self.created_at,
            "ftk_version": self.ftk_version,
            "torch_version": self.torch_version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CheckpointMeta":
        data = dict(data)
        data["spec"] = ModelSpec.from_dict(data["spec"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class LoadedCheckpoint:
    model: "FaceModel"
    meta: CheckpointMeta
    path: Path
    sha256: str
    # Training state (optimizer etc.) when the file has it; the trainer uses it for --resume.
    extra_state: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path, model: "FaceModel", meta: CheckpointMeta, extra_state: dict[str, Any] | None = None
) -> Path:
    """Write atomically: a crash mid-write never leaves a truncated checkpoint under ``path``."""
    import torch

    path = Path(path)
    if meta.num_classes != model.num_classes:
        raise CheckpointError(f"metadata says {meta.num_classes} classes but the model head has {model.num_classes}")
    if meta.class_names and len(meta.class_names) != meta.num_classes:
        raise CheckpointError(f"{len(meta.class_names)} class names for {meta.num_classes} classes")
    meta.torch_version = torch.__version__
    payload: dict[str, Any] = {
        "ftk_format": CHECKPOINT_FORMAT,
        "metadata_json": json.dumps(meta.to_dict()),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if extra_state:
        payload["extra_state"] = extra_state
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    log.info("wrote checkpoint %s", path)
    return path


def read_checkpoint_meta(path: str | Path) -> CheckpointMeta:
    return _read_payload(Path(path))[1]


def _read_payload(path: Path) -> tuple[dict[str, Any], CheckpointMeta]:
    import torch

    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - zip/pickle/unpickling errors all mean "not our checkpoint"
        raise CheckpointError(f"{path} is not a readable ftk checkpoint: {load_error_reason(exc)}") from None
    if not isinstance(payload, dict) or payload.get("ftk_format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not an ftk checkpoint (no '{CHECKPOINT_FORMAT}' marker)",
            hint="a plain state_dict needs --backbone NAME (--weights PATH) instead",
        )
    try:
        meta = CheckpointMeta.from_dict(json.loads(payload["metadata_json"]))
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path} has unreadable metadata: {exc}") from None
    return payload, meta


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Load a checkpoint, checking that the weights agree with the metadata (head size, backbone shapes)."""
    from toolkit.models.face_model import FaceModel

    path = Path(path)
    payload, meta = _read_payload(path)
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} has no state_dict")
    head_weight = state.get("head.weight")
    head_classes = 0 if head_weight is None else int(head_weight.shape[0])
    if head_classes != meta.num_classes:
        raise CheckpointError(
            f"{path}: the classifier head has {head_classes} outputs but the metadata says "
            f"{meta.num_classes} classes; the file is inconsistent"
        )
    if head_weight is not None and int(head_weight.shape[1]) != meta.spec.embedding_dim:
        raise CheckpointError(
            f"{path}: head input is {int(head_weight.shape[1])}-d but the spec says {meta.spec.embedding_dim}"
        )
    model = FaceModel(meta.spec, meta.num_classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit a {meta.spec.backbone} model: {str(exc)[:300]}") from None
    model.eval()
    return LoadedCheckpoint(
        model=model, meta=meta, path=path, sha256=sha256_file(path), extra_state=payload.get("extra_state") or {}
    )
