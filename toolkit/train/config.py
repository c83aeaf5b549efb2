"""The training config (``ftk train --config``): data, augmentation, schedule, loss and run settings, validated
when built; the pretrained weights a config may name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from toolkit.config import load_config
from toolkit.constants import MAX_INPUT_SIZE, MIN_INPUT_SIZE
from toolkit.errors import ConfigError


# facenet-pytorch's published InceptionResnetV1 weights (the same URLs its own loader uses).
PRETRAINED_URLS = {
    "vggface2": "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
    "casia-webface": "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
    "20180408-102900-casia-webface.pt",
}
PRETRAINED_BACKBONE = "inception_resnet_v1"
DOWNLOAD_TIMEOUT_S = 30.0

# Keys that may change between a run and its --resume without changing what is trained.
RUNTIME_KEYS = ("epochs", "device", "num_workers", "log_interval", "out_dir", "amp", "channels_last", "compile")


# --- the config --------------------------------------------------------------------------------------------------------
@dataclass
class DataConfig:
    # The faces CSV written by `ftk prepare` (labels.json beside it gives the image root).
    faces_csv: Path
    # Overrides labels.json's image_root (e.g. when the images moved to another machine).
    image_root: Path | None = None
    # LFW pairs file(s): identities named there are dropped from training (leak-free evaluation on those pairs).
    exclude_identities_from: Path | list[Path] | None = None
    # Identities with fewer faces in the CSV (all its splits, as `ftk prepare --min-images-per-person` counts them)
    # are dropped; who is dropped and why is logged.
    min_images_per_person: int = 2
    # Cap on training images per identity (seeded pick), so a few people do not dominate; null: no cap.
    max_images_per_person: int | None = None
    # Crop method: null = the backbone spec's ("box" + margin for InceptionResnetV1, "align" for MobileFaceNet).
    crop: Literal["box", "align"] | None = None
    train_split: str = "train"
    val_split: str = "val"
    # Keep the cropped faces as uint8 .npz under the run folder so a resumed/repeated run does not re-crop.
    cache_crops: bool = True


@dataclass
class AugmentConfig:
    hflip: float = 0.5  # probability of a horizontal flip
    scale: tuple[float, float] = (0.85, 1.0)  # random resized crop: fraction of the face area kept
    shift: float = 0.05  # random shift, fraction of the crop size
    rotate: float = 5.0  # random rotation, degrees either way
    color_jitter: float = 0.1  # brightness/contrast/saturation factors in 1 +- this


@dataclass
class SchedulerConfig:
    # Cosine annealing with warm restarts (SGDR, as torch's CosineAnnealingWarmRestarts) after a linear warmup.
    name: Literal["cosine_warm_restarts", "constant"] = "cosine_warm_restarts"
    T_0: int = 10  # epochs in the first cosine cycle
    T_mult: int = 1  # each next cycle is T_mult times longer
    warmup_epochs: float = 1.0
    eta_min: float = 1e-6  # learning rate at the bottom of each cycle


@dataclass
class LossConfig:
    name: Literal["focal", "cross_entropy"] = "focal"
    gamma: float = 2.0  # focal loss focusing parameter
    class_weights: bool = True  # weight classes by inverse training frequency
    label_smoothing: float = 0.0  # cross_entropy only


@dataclass
class TrainConfig:
    data: DataConfig
    backbone: str = "inception_resnet_v1"
    input_size: int | None = None  # null: the backbone's own (160 for InceptionResnetV1)
    pretrained: Literal["vggface2", "casia-webface"] | None = None  # downloaded by URL (online only)
    weights: Path | None = None  # a local backbone state_dict (the offline alternative to `pretrained`)
    init_checkpoint: Path | None = None  # an ftk checkpoint to fine-tune from (head kept if the classes match)
    freeze_backbone_epochs: int = 0  # train only the head for the first N epochs
    seed: int = 42
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 5e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.9  # sgd only
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    max_steps_per_epoch: int | None = None  # for smoke runs
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"  # auto: bf16 (else fp16) on CUDA, off on CPU
    channels_last: bool = True  # CUDA only
    compile: bool = False  # torch.compile the model (CUDA; slower start, faster steps)
    num_workers: int = 0  # threads for cropping faces (0: one per CPU core)
    out_dir: Path | None = None  # null: runs/<config name> in the working directory
    log_interval: int = 10  # steps between learning-rate log rows / progress-bar updates

    def __post_init__(self) -> None:
        checks = [
            (self.input_size is None or MIN_INPUT_SIZE <= self.input_size <= MAX_INPUT_SIZE,
             f"input_size must be in {MIN_INPUT_SIZE}..{MAX_INPUT_SIZE}, got {self.input_size}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch_size must be >= 2 (BatchNorm), got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.freeze_backbone_epochs >= 0, "freeze_backbone_epochs must be >= 0"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (self.log_interval >= 1, "log_interval must be >= 1"),
            (self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1, "max_steps_per_epoch must be >= 1"),
            (self.scheduler.T_0 >= 1, f"scheduler.T_0 must be >= 1, got {self.scheduler.T_0}"),
            (self.scheduler.T_mult >= 1, f"scheduler.T_mult must be >= 1, got {self.scheduler.T_mult}"),
            (self.scheduler.warmup_epochs >= 0, "scheduler.warmup_epochs must be >= 0"),
            (0 <= self.scheduler.eta_min < self.lr, f"scheduler.eta_min must be in [0, lr), got {self.scheduler.eta_min}"),
            (self.loss.gamma >= 0, "loss.gamma must be >= 0"),
            (0 <= self.loss.label_smoothing < 1, "loss.label_smoothing must be in [0, 1)"),
            (0 <= self.augment.hflip <= 1, "augment.hflip is a probability in [0, 1]"),
            (0 < self.augment.scale[0] <= self.augment.scale[1] <= 1, "augment.scale must be [min, max] in (0, 1]"),
            (0 <= self.augment.shift < 0.5, "augment.shift must be in [0, 0.5)"),
            (0 <= self.augment.color_jitter < 1, "augment.color_jitter must be in [0, 1)"),
            (self.data.min_images_per_person >= 1, "data.min_images_per_person must be >= 1"),
            (self.data.max_images_per_person is None or self.data.max_images_per_person >= 1,
             "data.max_images_per_person must be >= 1"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise ConfigError("; ".join(problems))
        sources = [k for k in ("pretrained", "weights", "init_checkpoint") if getattr(self, k) is not None]
        if len(sources) > 1:
            raise ConfigError(f"give at most one of pretrained, weights, init_checkpoint (got {', '.join(sources)})")
        if self.pretrained is not None and self.backbone != PRETRAINED_BACKBONE:
            raise ConfigError(f"pretrained: {self.pretrained} exists only for backbone {PRETRAINED_BACKBONE}, "
                              f"not {self.backbone}", hint="use weights: PATH for a local state_dict")


def load_train_config(path: str | Path) -> TrainConfig:
    return load_config(path, TrainConfig)
