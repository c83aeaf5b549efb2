"""The model a run starts from: its spec, and its initial weights (random, a weights file, facenet-pytorch's
pretrained weights, or an init_checkpoint)."""

from __future__ import annotations

import logging
import socket
import urllib.error
from pathlib import Path

from toolkit.checkpoint import load_checkpoint, read_checkpoint_meta
from toolkit.errors import ConfigError, DependencyError
from toolkit.io import sha256_file
from toolkit.models.registry import create_backbone, default_spec, load_backbone_weights, load_state_dict_file
from toolkit.spec import ModelSpec
from toolkit.train.config import DOWNLOAD_TIMEOUT_S, PRETRAINED_URLS, TrainConfig
log = logging.getLogger("toolkit.train")  # one logger for the stage: log lines keep the name they always had


def fetch_pretrained(name: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """facenet-pytorch's weights file for ``name`` in the torch hub cache, downloading it when missing (online only)."""
    import torch

    if name not in PRETRAINED_URLS:
        raise ConfigError(f"unknown pretrained weights {name!r}; choose one of {', '.join(PRETRAINED_URLS)}")
    url = PRETRAINED_URLS[name]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if cached.is_file():
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s weights from %s", name, url)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(url, str(cached), progress=True)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DependencyError(
            f"cannot download the {name} InceptionResnetV1 weights from {url} ({reason}); this machine looks offline",
            hint=f"download {cached.name} where you are online and pass --weights PATH (or `weights: PATH` in the "
                 f"config), or copy it to {cached}",
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return cached


def check_weights_file(config: TrainConfig) -> None:
    """Load ``weights`` into a backbone now, before any cropping: a wrong file fails in seconds, writing nothing."""
    spec = default_spec(config.backbone, input_size=config.input_size, crop=config.data.crop)
    load_backbone_weights(create_backbone(spec), load_state_dict_file(config.weights), str(config.weights))


def training_spec(config: TrainConfig) -> "ModelSpec":
    """The run's model contract, decided once: the init_checkpoint's spec (which the config may not contradict), else
    the backbone's default at the configured input size and crop. Crops, model and checkpoints all use it."""
    if config.init_checkpoint is None:
        return default_spec(config.backbone, input_size=config.input_size, crop=config.data.crop)

    spec = read_checkpoint_meta(config.init_checkpoint).spec
    if spec.backbone != config.backbone:
        raise ConfigError(f"init_checkpoint {config.init_checkpoint} is a {spec.backbone} model but backbone is "
                          f"{config.backbone}", hint=f"set backbone: {spec.backbone}")
    if config.input_size not in (None, spec.input_size) or config.data.crop not in (None, spec.crop):
        raise ConfigError("input_size/data.crop differ from the init_checkpoint's spec; leave them unset")
    return spec


def _build_model(config: TrainConfig, spec: "ModelSpec", num_classes: int, class_names: list[str]):
    """The FaceModel for ``spec`` and a description of where its initial weights came from."""
    from toolkit.models.face_model import FaceModel

    if config.init_checkpoint is not None:
        loaded = load_checkpoint(config.init_checkpoint)
        if loaded.meta.spec != spec:
            raise ConfigError(f"init_checkpoint {config.init_checkpoint} changed while training started")
        model = FaceModel(spec, num_classes)
        model.backbone.load_state_dict(loaded.model.backbone.state_dict())
        same_head = loaded.meta.class_names == class_names and loaded.model.head is not None
        if same_head:
            model.head.load_state_dict(loaded.model.head.state_dict())
        source = f"finetune:{Path(config.init_checkpoint).name}:sha256={loaded.sha256[:16]}" + \
                 ("" if same_head else "+new-head")
        return model, source
    model = FaceModel(spec, num_classes)
    weights_file = None
    if config.weights is not None:
        weights_file = Path(config.weights)
    elif config.pretrained is not None:
        weights_file = fetch_pretrained(config.pretrained)
    if weights_file is None:
        return model, "random"
    load_backbone_weights(model.backbone, load_state_dict_file(weights_file), str(weights_file))
    label = config.pretrained or weights_file.name
    return model, f"pretrained:{label}:sha256={sha256_file(weights_file)[:16]}"
