"""Backbone registry: each backbone carries its own preprocessing spec (timm's pretrained-cfg idea).

Nothing here imports torch at module import time; ``create_backbone`` imports the builder lazily.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import CheckpointError, DependencyError, InputError
from toolkit.wording import did_you_mean
from toolkit.spec import ModelSpec

if TYPE_CHECKING:
    import torch.nn as nn

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    builder: str  # "module:function", imported on demand; function(spec) -> nn.Module returning raw features
    spec: ModelSpec
    description: str
    pretrained_note: str = ""


BACKBONES: dict[str, BackboneInfo] = {
    "inception_resnet_v1": BackboneInfo(
        name="inception_resnet_v1",
        builder="toolkit.models.inception_resnet:build_inception_resnet_v1",
        spec=ModelSpec(
            backbone="inception_resnet_v1",
            input_size=160,
            embedding_dim=512,
            mean=(127.5, 127.5, 127.5),
            std=(128.0, 128.0, 128.0),
            crop="box",
            box_margin=20,
        ),
        description="facenet-pytorch InceptionResnetV1 (27.9 M parameters), 512-d, 160x160",
        pretrained_note="pretrained 'vggface2'/'casia-webface' are downloaded by facenet-pytorch (online only); "
        "offline, pass --weights PATH to a local state_dict",
    ),
    "mobilefacenet": BackboneInfo(
        name="mobilefacenet",
        builder="toolkit.models.mobilefacenet:build_mobilefacenet",
        spec=ModelSpec(
            backbone="mobilefacenet",
            input_size=112,
            embedding_dim=128,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            crop="align",
            # For --box-crop: best AUC on pairsDevTrain among margins 0-56 (MTCNN boxes are ~70% of the aligned
            # crop's width); see docs/mobilefacenet.md.
            box_margin=32,
        ),
        description="MobileFaceNet (about 1.0 M parameters), 128-d, 112x112, loads the published MS1M weights",
    ),
    "tiny": BackboneInfo(
        name="tiny",
        builder="toolkit.models.tiny:build_tiny",
        spec=ModelSpec(
            backbone="tiny",
            input_size=32,
            embedding_dim=16,
            mean=(127.5, 127.5, 127.5),
            std=(128.0, 128.0, 128.0),
            crop="box",
            box_margin=0,
        ),
        description="a tiny CNN for tests and smoke runs (seconds to train, convert and run)",
    ),
}


def get_backbone_info(name: str) -> BackboneInfo:
    try:
        return BACKBONES[name]
    except KeyError:
        raise InputError(f"unknown backbone {name!r}",
                         hint=did_you_mean(name, BACKBONES, f"choose one of {', '.join(BACKBONES)}")) from None


def default_spec(name: str, **overrides: Any) -> ModelSpec:
    """The backbone's spec with user overrides (e.g. ``input_size``, ``crop``) that are not None."""
    spec = get_backbone_info(name).spec
    changes = {k: v for k, v in overrides.items() if v is not None}
    return spec.replace(**changes) if changes else spec


def create_backbone(spec: ModelSpec) -> "nn.Module":
    """Build the backbone for ``spec``: a module mapping normalised NCHW float input to raw [N, D] features."""
    info = get_backbone_info(spec.backbone)
    module_name, func_name = info.builder.split(":")
    try:
        builder = getattr(importlib.import_module(module_name), func_name)
    except ImportError as exc:
        raise DependencyError(f"cannot import the {spec.backbone} backbone: {exc}") from exc
    return builder(spec)


def load_state_dict_file(path: str | Path) -> dict[str, Any]:
    """torch.load a plain state_dict safely (weights_only), with a clear error for anything else."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise CheckpointError(
            f"{path} is not a loadable PyTorch weights file ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state_dict (a mapping of parameter names to tensors)")
    return obj


def load_backbone_weights(backbone: "nn.Module", state_dict: dict[str, Any], source: str) -> None:
    """Load pretrained weights into a bare backbone; classifier layers in the file are ignored, all else must fit."""
    ignored_prefixes = ("logits.", "head.", "fc.", "classifier.")
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    state_dict = {k.removeprefix("backbone."): v for k, v in state_dict.items()}
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith(ignored_prefixes)}
    own = backbone.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong_shape = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong_shape:
        details = []
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong_shape:
            details.append(f"{len(wrong_shape)} with another shape (e.g. {wrong_shape[0]})")
        raise CheckpointError(
            f"weights in {source} do not fit the {type(backbone).__name__} backbone: " + "; ".join(details),
            hint="check --backbone matches the weights file",
        )
    backbone.load_state_dict(state_dict, strict=True)
