"""Train or fine-tune a backbone + linear classifier head on a faces CSV from ``ftk prepare``.

One process per device. Under ``torchrun`` (``WORLD_SIZE`` > 1) the same code runs as DistributedDataParallel with a
``DistributedSampler``; without it, a single process on CUDA (with autocast mixed precision) or the CPU.

Data: the CSV's train/val splits, optionally minus the identities of an LFW pairs file (a leak-free development
loop), cropped once per the model's spec and cached as uint8 under the run folder; augmentation runs batched on the
training device (flip, small random resized crop/shift/rotation, small colour jitter; never a vertical flip).

Outputs in the run folder (all written atomically, by rank 0): ``last.pt`` (with optimizer/epoch state for
``--resume``), ``best.pt`` (best validation accuracy), ``results.csv`` (one row per epoch), ``lr.csv`` (learning rate
every ``log_interval`` steps), ``curves.png`` (loss/accuracy/lr) and ``config.resolved.yaml``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import shutil
import socket
import time
import urllib.error
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

import numpy as np

from toolkit.config import config_hash, dump_config_yaml, load_config
from toolkit.errors import CheckpointError, ConfigError, DependencyError, InputError, NoFacesError, OutputExistsError
from toolkit.io import (
    atomic_path, check_free_space, disk_full_is_input_error, sha256_file, sha256_text, write_text_atomic,
)

if TYPE_CHECKING:
    import torch

    from toolkit.data.dataset import FaceRecord
    from toolkit.spec import ModelSpec

log = logging.getLogger(__name__)

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

RESULTS_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]


# --- the config --------------------------------------------------------------------------------------------------------
@dataclass
class DataConfig:
    # The faces CSV written by `ftk prepare` (labels.json beside it gives the image root).
    faces_csv: Path
    # Overrides labels.json's image_root (e.g. when the images moved to another machine).
    image_root: Path | None = None
    # LFW pairs file(s): identities named there are dropped from training (leak-free evaluation on those pairs).
    exclude_identities_from: Path | list[Path] | None = None
    # Identities with fewer images (train + val, after exclusion) are dropped.
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


@dataclass
class TrainResult:
    out_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path
    results_csv: Path
    epochs_completed: int
    best_epoch: int | None
    best_val_acc: float | None
    last_metrics: dict[str, float]
    num_classes: int
    num_train: int
    num_val: int
    images_per_second: float  # training images per second (augmentation + forward + backward), this process's epochs
    seconds: float
    device: str
    amp: str
    world_size: int
    resumed_from_epoch: int = 0


# --- learning rate ---------------------------------------------------------------------------------------------------
def lr_at(epoch: float, config: TrainConfig) -> float:
    """Learning rate at a fractional epoch: linear warmup, then SGDR cosine cycles of T_0 * T_mult**i epochs."""
    s = config.scheduler
    base = config.lr
    if s.name == "constant":
        return base if epoch >= s.warmup_epochs or s.warmup_epochs == 0 else base * max(epoch, 1e-3) / s.warmup_epochs
    if s.warmup_epochs > 0 and epoch < s.warmup_epochs:
        return base * max(epoch / s.warmup_epochs, 1e-3)
    t = epoch - s.warmup_epochs
    if s.T_mult == 1:
        t_cur, t_i = t % s.T_0, float(s.T_0)
    else:
        n = int(math.log(t / s.T_0 * (s.T_mult - 1) + 1, s.T_mult))
        t_cur = t - s.T_0 * (s.T_mult**n - 1) / (s.T_mult - 1)
        t_i = float(s.T_0 * s.T_mult**n)
    return s.eta_min + (base - s.eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


# --- pretrained weights ----------------------------------------------------------------------------------------------
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


# --- data --------------------------------------------------------------------------------------------------------------
def identities_in_pairs(path: str | Path) -> set[str]:
    """Every identity named in an LFW pairs file (the one parser: :func:`toolkit.data.pairs.read_pairs`)."""
    from toolkit.data.pairs import read_pairs

    path = Path(path)
    if not path.is_file():
        raise InputError(f"pairs file not found: {path}", hint="exclude_identities_from must name an LFW pairs file")
    return read_pairs(path).identities()


@dataclass
class TrainData:
    train_images: np.ndarray  # uint8 [N, S, S, 3]
    train_labels: np.ndarray  # int64 [N]
    val_images: np.ndarray
    val_labels: np.ndarray
    class_names: list[str]
    excluded_identities: int = 0
    rejects: list[tuple[str, str]] = field(default_factory=list)


def select_records(config: TrainConfig) -> tuple[list["FaceRecord"], list["FaceRecord"], list[str], int]:
    """Train and val records after identity exclusion and the per-person filters; labels re-indexed 0..C-1."""
    import random

    from toolkit.data.dataset import read_faces_csv

    d = config.data
    records = read_faces_csv(d.faces_csv)
    if not records:
        raise NoFacesError(f"{d.faces_csv} has no faces", hint="run `ftk prepare` on a folder of photos first")
    excluded: set[str] = set()
    pairs_files = d.exclude_identities_from
    if pairs_files is not None:
        for p in pairs_files if isinstance(pairs_files, list) else [pairs_files]:
            excluded |= identities_in_pairs(p)
    splits = (d.train_split, d.val_split)
    present = {r.person_name for r in records}
    kept = [r for r in records if r.split_type in splits and r.person_name not in excluded]
    counts: dict[str, int] = {}
    for r in kept:
        counts[r.person_name] = counts.get(r.person_name, 0) + 1
    people = {p for p, c in counts.items() if c >= d.min_images_per_person}
    train = [r for r in kept if r.split_type == d.train_split and r.person_name in people]
    class_names = sorted({r.person_name for r in train})
    if len(class_names) < 2:
        raise NoFacesError(
            f"{d.faces_csv}: {len(class_names)} identities left for training (split {d.train_split!r}, "
            f">= {d.min_images_per_person} images each, {len(present & excluded)} excluded by pairs files); need >= 2",
            hint="lower data.min_images_per_person or use a folder with more people",
        )
    if d.max_images_per_person is not None:
        rng = random.Random(config.seed)
        by_person: dict[str, list] = {}
        for r in train:
            by_person.setdefault(r.person_name, []).append(r)
        train = sorted((r for rs in by_person.values()
                        for r in (rng.sample(rs, d.max_images_per_person) if len(rs) > d.max_images_per_person else rs)),
                       key=lambda r: r.image_path)
    label_of = {name: i for i, name in enumerate(class_names)}
    val = [r for r in kept if r.split_type == d.val_split and r.person_name in label_of]
    train = [replace(r, label=label_of[r.person_name]) for r in train]
    val = [replace(r, label=label_of[r.person_name]) for r in val]
    return train, val, class_names, len(present & excluded)


def load_train_data(config: TrainConfig, spec: "ModelSpec", run_dir: Path, progress: bool = True,
                    build_cache: bool = True) -> TrainData:
    """Select, crop (or read the crop cache) and return the training and validation faces."""
    from toolkit.data.dataset import image_root_for

    train, val, class_names, excluded = select_records(config)
    root = Path(config.data.image_root) if config.data.image_root else image_root_for(config.data.faces_csv)
    key = sha256_text("\n".join([
        sha256_file(config.data.faces_csv), str(root), repr(sorted(spec.to_dict().items())),
        *(f"{r.split_type},{r.image_path},{r.label}" for r in train + val),
    ]))[:16]
    cache = run_dir / "cache" / f"crops-{key}.npz"
    if config.data.cache_crops and cache.is_file():
        with np.load(cache) as z:
            log.info("read %d cached face crops from %s", len(z["train_labels"]) + len(z["val_labels"]), cache)
            return TrainData(z["train_images"], z["train_labels"], z["val_images"], z["val_labels"], class_names,
                             excluded)
    if not build_cache and config.data.cache_crops:
        raise InputError(f"crop cache {cache} is missing")  # only DDP followers ask, after rank 0 wrote it
    if build_cache:
        check_free_space(run_dir, _run_bytes(config, spec, len(class_names), len(train) + len(val)),
                         f"the run ({len(train) + len(val)} cached face crops and the checkpoints)")
    from toolkit.data.faces import crop_records

    workers = config.num_workers or os.cpu_count() or 1
    train_images, train_labels, rejects = crop_records(train, root, spec, workers, progress, "cropping train faces")
    val_images, val_labels, val_rejects = crop_records(val, root, spec, workers, progress, "cropping val faces")
    rejects += val_rejects
    if rejects:
        log.warning("%d of %d faces could not be cropped (e.g. %s: %s); they are left out", len(rejects),
                    len(train) + len(val), *rejects[0])
    if len(train_images) < 2:
        raise NoFacesError(f"only {len(train_images)} training faces could be cropped from {config.data.faces_csv}",
                           hint=f"check the image root {root} (data.image_root overrides labels.json)")
    if config.data.cache_crops:
        with atomic_path(cache) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, train_images=train_images, train_labels=train_labels, val_images=val_images,
                     val_labels=val_labels)
    return TrainData(train_images, train_labels, val_images, val_labels, class_names, excluded, rejects)


def _run_bytes(config: TrainConfig, spec: "ModelSpec", num_classes: int, n_faces: int) -> int:
    """What a run writes at most: the crop cache, best.pt, last.pt with its optimizer state, and the temp copy of
    last.pt while it is replaced (parameters counted on the meta device: nothing is allocated)."""
    import torch

    from toolkit.models.face_model import FaceModel

    with torch.device("meta"):
        params = sum(p.numel() for p in FaceModel(spec, num_classes).parameters()) * 4
    optimizer_copies = 1 if config.optimizer == "sgd" else 2
    crops = n_faces * spec.input_size ** 2 * 3 if config.data.cache_crops else 0
    return crops + params * (1 + 2 * (1 + optimizer_copies)) + 2**20


def check_weights_file(config: TrainConfig) -> None:
    """Load ``weights`` into a backbone now, before any cropping: a wrong file fails in seconds, writing nothing."""
    from toolkit.models.registry import create_backbone, default_spec, load_backbone_weights, load_state_dict_file

    spec = default_spec(config.backbone, input_size=config.input_size, crop=config.data.crop)
    load_backbone_weights(create_backbone(spec), load_state_dict_file(config.weights), str(config.weights))


# --- augmentation, loss ----------------------------------------------------------------------------------------------
def augment_batch(x: "torch.Tensor", aug: AugmentConfig) -> "torch.Tensor":
    """Face-safe augmentation of float NCHW 0..255 on its device: flip, zoom/shift/rotate (one affine), colour."""
    import torch
    import torch.nn.functional as F

    n, dev = x.shape[0], x.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.empty(n, device=dev).uniform_(lo, hi)

    side = uniform(*aug.scale).sqrt()  # zoom: sample a square of this side fraction
    angle = uniform(-aug.rotate, aug.rotate) * (math.pi / 180)
    flip = torch.where(torch.rand(n, device=dev) < aug.hflip, -1.0, 1.0)
    cos, sin = angle.cos() * side, angle.sin() * side
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    # Shift within what the zoom leaves, plus the configured shift (normalised coords span 2).
    slack = (1 - side) + 2 * aug.shift
    theta[:, 0, 2] = (torch.rand(n, device=dev) * 2 - 1) * slack
    theta[:, 1, 2] = (torch.rand(n, device=dev) * 2 - 1) * slack
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    j = aug.color_jitter
    if j > 0:
        shape = (n, 1, 1, 1)
        x = x * uniform(1 - j, 1 + j).view(shape)  # brightness
        gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
        x = gray + (x - gray) * uniform(1 - j, 1 + j).view(shape)  # saturation
        mean = gray.mean(dim=(2, 3), keepdim=True)
        x = mean + (x - mean) * uniform(1 - j, 1 + j).view(shape)  # contrast
    return x.clamp_(0, 255)


def classification_loss(logits: "torch.Tensor", target: "torch.Tensor", config: LossConfig,
                        weights: "torch.Tensor | None") -> "torch.Tensor":
    """Focal loss (Lin et al. 2017) with optional per-class weights, or (weighted, smoothed) cross-entropy."""
    import torch.nn.functional as F

    logits = logits.float()
    if config.name == "cross_entropy":
        return F.cross_entropy(logits, target, weight=weights, label_smoothing=config.label_smoothing)
    logp = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    loss = -((1 - logp.exp()) ** config.gamma) * logp
    if weights is None:
        return loss.mean()
    w = weights[target]
    return (loss * w).sum() / w.sum()


# --- distributed -----------------------------------------------------------------------------------------------------
@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def _init_distributed(device_pref: str) -> tuple[_Dist, "torch.device"]:
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device_pref == "cuda" or (device_pref == "auto" and torch.cuda.is_available())
    if device_pref == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda was asked for but PyTorch sees no CUDA GPU", hint="use --device cpu")
    if world <= 1:
        return _Dist(), torch.device("cuda" if use_cuda else "cpu")
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    info = _Dist(dist.get_rank(), dist.get_world_size(), local_rank)
    return info, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")


def _all_sum(values: list[float], dist_info: _Dist, device: "torch.device") -> list[float]:
    if not dist_info.active:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _barrier(dist_info: _Dist) -> None:
    if dist_info.active:
        import torch.distributed as dist

        dist.barrier()


# --- outputs ---------------------------------------------------------------------------------------------------------
def write_results_csv(path: Path, history: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RESULTS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k]) for k in RESULTS_COLUMNS})
    write_text_atomic(path, buf.getvalue())


def write_lr_csv(path: Path, rows: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["step", "epoch", "lr", "loss"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    write_text_atomic(path, buf.getvalue())


def plot_curves(path: Path, history: list[dict[str, float]], lr_rows: list[dict[str, float]]) -> None:
    """Loss, accuracy and learning rate per epoch, side by side in one PNG."""
    from toolkit.plots import _pyplot, save_figure

    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(epochs, [h["train_loss"] for h in history], "o-", ms=3, label="train")
    axes[0].plot(epochs, [h["val_loss"] for h in history], "o-", ms=3, label="val")
    axes[0].set(title="loss", xlabel="epoch")
    axes[1].plot(epochs, [h["train_acc"] for h in history], "o-", ms=3, label="train (augmented)")
    axes[1].plot(epochs, [h["val_acc"] for h in history], "o-", ms=3, label="val")
    axes[1].set(title="classification accuracy", xlabel="epoch", ylim=(0, 1))
    axes[2].plot([r["epoch"] for r in lr_rows], [r["lr"] for r in lr_rows])
    axes[2].set(title="learning rate", xlabel="epoch")
    for ax in axes[:2]:
        ax.legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


# --- the loop ----------------------------------------------------------------------------------------------------------
def _resolve_amp(config: TrainConfig, device: "torch.device") -> str:
    import torch

    if config.amp == "off" or (config.amp == "auto" and device.type != "cuda"):
        return "off"
    if config.amp == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if config.amp == "fp16" and device.type != "cuda":
        raise ConfigError("amp: fp16 needs CUDA; use bf16 or off on the CPU")
    return config.amp


def training_spec(config: TrainConfig) -> "ModelSpec":
    """The run's model contract, decided once: the init_checkpoint's spec (which the config may not contradict), else
    the backbone's default at the configured input size and crop. Crops, model and checkpoints all use it."""
    from toolkit.models.registry import default_spec

    if config.init_checkpoint is None:
        return default_spec(config.backbone, input_size=config.input_size, crop=config.data.crop)
    from toolkit.checkpoint import read_checkpoint_meta

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
    from toolkit.models.registry import load_backbone_weights, load_state_dict_file

    if config.init_checkpoint is not None:
        from toolkit.checkpoint import load_checkpoint

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


def train(config: TrainConfig, config_path: str | Path | None = None, resume: bool = False, overwrite: bool = False,
          progress: bool = True, on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train per ``config``; ``on_step(global_step, loss)`` is called after every optimizer step (hooks, tests)."""
    started = time.perf_counter()
    name = Path(config_path).stem if config_path else "train"
    run_dir = Path(config.out_dir) if config.out_dir is not None else Path("runs") / name
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume and not last_path.is_file():
        raise InputError(f"--resume: no {last_path} to resume from", hint="start without --resume")
    if not resume and not overwrite and (last_path.exists() or best_path.exists()):
        raise OutputExistsError(f"{run_dir} already holds a training run ({last_path.name})",
                                hint="pass --resume to continue it, --overwrite to start again, or --out DIR")
    # Fail fast on weights we cannot get (offline vggface2) before any cropping.
    if config.pretrained is not None and config.weights is None and config.init_checkpoint is None:
        fetch_pretrained(config.pretrained)
    if config.weights is not None:
        check_weights_file(config)

    created = not run_dir.exists()
    dist_info, device = _init_distributed(config.device)
    try:
        with disk_full_is_input_error(run_dir):
            return _train(config, run_dir, resume, progress, on_step, dist_info, device, started)
    except BaseException:
        if created and dist_info.is_main and not last_path.exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # a run that failed before its first checkpoint leaves nothing
        raise
    finally:
        if dist_info.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _train(config: TrainConfig, run_dir: Path, resume: bool, progress: bool,
           on_step: Callable[[int, float], None] | None, dist_info: _Dist, device: "torch.device",
           started: float) -> TrainResult:
    trainer = Trainer(config, run_dir, dist_info, device, progress=progress, on_step=on_step)
    if resume:
        trainer.restore()
    trainer.fit()
    return trainer.result(started)


@dataclass(frozen=True)
class _RunFiles:
    last: Path
    best: Path
    results: Path
    lr: Path
    plot: Path

    @classmethod
    def of(cls, run_dir: Path) -> "_RunFiles":
        return cls(run_dir / "last.pt", run_dir / "best.pt", run_dir / "results.csv", run_dir / "lr.csv",
                   run_dir / "curves.png")


@dataclass
class _EpochStats:
    train_loss: float
    train_acc: float
    lr: float  # at the epoch's last step
    speed: float  # training images per second, all processes together
    started: float  # perf_counter at its first step: results.csv's "seconds" count from here


class Trainer:
    """One process's share of a training run: set up once, ``restore()`` for --resume, ``fit()``, ``result()``.

    The order of the set-up steps is the order they draw on torch's RNG: keep it, or runs stop being reproducible.
    """

    def __init__(self, config: TrainConfig, run_dir: Path, dist_info: _Dist, device: "torch.device",
                 progress: bool = True, on_step: Callable[[int, float], None] | None = None) -> None:
        import torch

        self.config, self.run_dir, self.dist, self.device = config, run_dir, dist_info, device
        self.progress, self.on_step = progress, on_step
        self.main, self.cuda = dist_info.is_main, device.type == "cuda"
        self.files = _RunFiles.of(run_dir)
        torch.manual_seed(config.seed + dist_info.rank)
        self.spec = training_spec(config)
        self.data = self._load_data()
        self.num_classes = len(self.data.class_names)
        self.core, self.weights_source = _build_model(config, self.spec, self.num_classes, self.data.class_names)
        log.info("training %s on %d faces of %d identities (%d val faces; %d identities excluded by pairs files)",
                 self.spec.backbone, len(self.data.train_labels), self.num_classes, len(self.data.val_labels),
                 self.data.excluded_identities)
        self.amp = _resolve_amp(config, device)
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)
        self.core.to(device)
        if self.cuda and config.channels_last:
            self.core.to(memory_format=torch.channels_last)
        self.model = self.core  # replaced by its compiled / DDP wrapper in fit()
        self.optimizer, self.scaler = self._optimiser()
        self.full_hash, self.resume_hash = config_hash(config), config_hash(config, exclude=RUNTIME_KEYS)
        self.start_epoch, self.history, self.lr_rows = 0, [], []
        self.best_val, self.best_epoch = None, None
        self.speeds: list[float] = []

    # --- set-up ------------------------------------------------------------------------------------------------------
    def _load_data(self) -> TrainData:
        """Data before the model (its class list sizes the head); rank 0 crops and caches, the others read it."""
        config = self.config
        if self.main:
            data = load_train_data(config, self.spec, self.run_dir, progress=self.progress)
        _barrier(self.dist)
        if not self.main:
            data = load_train_data(config, self.spec, self.run_dir, progress=False, build_cache=False)
        return data

    def _optimiser(self):
        """SGD (Nesterov) or AdamW, no weight decay on BatchNorm and biases; the AMP grad scaler (fp16 only).
        The learning rate is set every step from :func:`lr_at` (the scheduler)."""
        import torch

        decay, no_decay = [], []
        for p in self.core.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        config = self.config
        groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if config.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
        else:
            optimizer = torch.optim.AdamW(groups, lr=config.lr)
        return optimizer, torch.amp.GradScaler("cuda", enabled=(self.amp == "fp16"))

    def restore(self) -> None:
        """--resume: weights, optimiser, AMP scaler, RNG, history and best-so-far from last.pt."""
        import torch

        from toolkit.checkpoint import load_checkpoint

        last = self.files.last
        loaded = load_checkpoint(last)
        extra = loaded.extra_state
        if not extra or "epochs_completed" not in extra:
            raise CheckpointError(f"{last} has no training state to resume from")
        if extra.get("resume_hash") != self.resume_hash:
            raise ConfigError(f"the config differs from the one {last} was trained with (beyond "
                              f"{', '.join(RUNTIME_KEYS)})", hint="resume with the same config, or start a new --out")
        if loaded.meta.class_names != self.data.class_names:
            raise CheckpointError(f"{last} was trained on other identities than the data now gives")
        self.core.load_state_dict(loaded.model.state_dict())
        self.optimizer.load_state_dict(extra["optimizer"])
        if extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])
        if "rng" in extra:
            torch.set_rng_state(extra["rng"])
        self.start_epoch = int(extra["epochs_completed"])
        self.history, self.lr_rows = list(extra.get("history", [])), list(extra.get("lr_log", []))
        self.best_val, self.best_epoch = extra.get("best_val_acc"), extra.get("best_epoch")
        log.info("resuming %s after epoch %d", last, self.start_epoch)

    def _wrap_model(self) -> None:
        import torch

        if self.config.compile and self.cuda:
            self.model = torch.compile(self.model)
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.model = DDP(self.model, device_ids=[self.dist.local_rank] if self.cuda else None,
                             find_unused_parameters=self.config.freeze_backbone_epochs > 0)

    def _load_tensors(self) -> None:
        """Tensors in memory (on the GPU when there is one): no per-sample Python loading on the hot path."""
        import torch

        from toolkit.models.face_model import PixelNormalizer

        self.train_x = torch.from_numpy(self.data.train_images).to(self.device)
        self.train_y = torch.from_numpy(self.data.train_labels).to(self.device)
        self.val_x = torch.from_numpy(self.data.val_images).to(self.device)
        self.val_y = torch.from_numpy(self.data.val_labels).to(self.device)
        self.normalize = PixelNormalizer(self.spec).to(self.device)  # exactly what the exported graph does
        self.class_weights = None
        if self.config.loss.class_weights:
            counts = torch.bincount(self.train_y, minlength=self.num_classes).float().clamp(min=1)
            self.class_weights = counts.sum() / (self.num_classes * counts)

    def _plan_batches(self) -> None:
        """Each rank's share (DistributedSampler, also with one process), the batch size and steps per epoch."""
        from torch.utils.data import DistributedSampler

        rank, world = self.dist.rank, self.dist.world_size
        self.train_sampler = DistributedSampler(range(len(self.train_y)), num_replicas=world, rank=rank,
                                                shuffle=True, seed=self.config.seed, drop_last=True)
        self.val_sampler = DistributedSampler(range(len(self.val_y)), num_replicas=world, rank=rank,
                                              shuffle=False) if len(self.val_y) else None
        per_rank = len(self.train_sampler)
        self.batch = min(self.config.batch_size, per_rank)
        self.steps_per_epoch = per_rank // self.batch
        if self.config.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, self.config.max_steps_per_epoch)
        if self.steps_per_epoch < 1 or self.batch < 2:
            raise NoFacesError(f"{len(self.train_y)} training faces are too few for batches of 2+ on {world} "
                               f"process(es)")

    # --- the loop ----------------------------------------------------------------------------------------------------
    def fit(self) -> None:
        """Epochs start_epoch..config.epochs; Ctrl-C saves last.pt so --resume re-runs the interrupted epoch."""
        self._wrap_model()
        self._load_tensors()
        self._plan_batches()
        if self.main:
            write_text_atomic(self.run_dir / "config.resolved.yaml", dump_config_yaml(self.config))
        epoch = self.start_epoch
        try:
            for epoch in range(self.start_epoch, self.config.epochs):
                row = self.one_epoch(epoch)
                self.history.append(row)
                score = row["val_acc"] if not math.isnan(row["val_acc"]) else -row["train_loss"]
                improved = self.best_val is None or score > self.best_val
                if improved:
                    self.best_val, self.best_epoch = score, epoch + 1
                if self.main:
                    self.checkpoint(row, improved)
        except KeyboardInterrupt:
            if self.main:
                # The interrupted epoch is not counted: --resume re-runs it from these (partly trained) weights.
                self._save(self.files.last, epoch, self.history[-1] if self.history else {}, self._state(epoch))
                self._write_logs(plot=False)
                log.warning("interrupted in epoch %d: saved %s; continue with --resume", epoch + 1, self.files.last)
            raise

    def one_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch, validate, and return its results.csv row."""
        stats = self._train_epoch(epoch)
        self.speeds.append(stats.speed)
        val_loss, val_acc = self.validate()
        return {"epoch": epoch + 1, "train_loss": stats.train_loss, "train_acc": stats.train_acc,
                "val_loss": val_loss, "val_acc": val_acc, "lr": stats.lr,
                "seconds": round(time.perf_counter() - stats.started, 3), "images_per_s": round(stats.speed, 2)}

    def _train_epoch(self, epoch: int) -> _EpochStats:
        import torch

        self._set_trainable(epoch)
        self.train_sampler.set_epoch(epoch)
        order = torch.tensor(list(iter(self.train_sampler)), device=self.device)
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        seen, steps, batch = 0, self.steps_per_epoch, self.batch
        self._sync()
        t0 = time.perf_counter()
        bar = self._progress_bar(epoch)
        lr = lr_at(epoch, self.config)
        for i in bar:
            lr = lr_at(epoch + i / steps, self.config)
            y, logits, loss = self._step(order[i * batch:(i + 1) * batch], lr)
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            step = epoch * steps + i + 1
            if self.on_step is not None:
                self.on_step(step, float(loss.detach()))
            if step % self.config.log_interval == 0 or i == steps - 1:
                self._log_step(bar, step, epoch + (i + 1) / steps, lr, float(loss.detach()))
        self._sync()
        speed = seen * self.dist.world_size / (time.perf_counter() - t0)
        totals = _all_sum([float(loss_sum), float(correct), float(seen)], self.dist, self.device)
        return _EpochStats(totals[0] / totals[2], totals[1] / totals[2], lr, speed, t0)

    def _set_trainable(self, epoch: int) -> None:
        frozen = epoch < self.config.freeze_backbone_epochs
        for p in self.core.backbone.parameters():
            p.requires_grad_(not frozen)
        self.model.train()
        if frozen:
            self.core.backbone.eval()  # keep pretrained BatchNorm statistics while only the head learns

    def _progress_bar(self, epoch: int):
        bar = range(self.steps_per_epoch)
        if self.progress and self.main:
            from tqdm import tqdm

            bar = tqdm(bar, desc=f"epoch {epoch + 1}/{self.config.epochs}", unit="step", leave=False)
        return bar

    def _step(self, idx: "torch.Tensor", lr: float):
        """One optimiser step on the batch ``idx`` at ``lr``: (labels, logits, loss)."""
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        x, y = self._inputs(self.train_x[idx], augment=True), self.train_y[idx]
        logits = self._forward(x)
        loss = classification_loss(logits, y, self.config.loss, self.class_weights)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return y, logits, loss

    def _log_step(self, bar, step: int, epoch: float, lr: float, loss: float) -> None:
        """An lr.csv row (and the bar's postfix); a loss that is no longer finite stops the run."""
        if not math.isfinite(loss):
            raise InputError(f"the loss became {loss} at step {step}", hint="lower lr, or use amp: bf16/off")
        self.lr_rows.append({"step": step, "epoch": round(epoch, 4), "lr": lr, "loss": loss})
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}")

    def _inputs(self, x: "torch.Tensor", augment: bool) -> "torch.Tensor":
        """uint8 NHWC crops -> the backbone's input: NCHW float, augmented when training, normalised."""
        import torch

        x = x.permute(0, 3, 1, 2).float()
        if augment:
            x = augment_batch(x, self.config.augment)
        x = self.normalize(x)
        return x.contiguous(memory_format=torch.channels_last) if self.cuda and self.config.channels_last else x

    def _forward(self, x: "torch.Tensor") -> "torch.Tensor":
        import torch

        dtype = self.autocast_dtype
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return self.model(x)

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def validate(self) -> tuple[float, float]:
        """Validation loss and accuracy (no augmentation), summed over all processes; NaN without val faces."""
        import torch

        if self.val_sampler is None:
            return float("nan"), float("nan")
        self.model.eval()
        loss_sum, correct, seen = 0.0, 0, 0
        order = torch.tensor(list(iter(self.val_sampler)), device=self.device)
        with torch.no_grad():
            for i in range(0, len(order), self.batch):
                idx = order[i:i + self.batch]
                logits = self._forward(self._inputs(self.val_x[idx], augment=False))
                y = self.val_y[idx]
                loss_sum += float(classification_loss(logits, y, self.config.loss, self.class_weights)) * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
        totals = _all_sum([loss_sum, float(correct), float(seen)], self.dist, self.device)
        return totals[0] / totals[2], totals[1] / totals[2]

    # --- outputs (rank 0) --------------------------------------------------------------------------------------------
    def checkpoint(self, row: dict[str, float], improved: bool) -> None:
        """best.pt when improved, last.pt with the training state, results.csv, lr.csv and curves.png."""
        epoch = int(row["epoch"])
        metrics = {k: v for k, v in row.items() if k != "epoch"}
        if improved:
            self._save(self.files.best, epoch, metrics, None)
        self._save(self.files.last, epoch, metrics, self._state(epoch))
        self._write_logs(plot=True)
        log.info("epoch %d/%d: train loss %.4f acc %.3f | val loss %.4f acc %.3f | lr %.2e | %.1f img/s",
                 epoch, self.config.epochs, row["train_loss"], row["train_acc"], row["val_loss"], row["val_acc"],
                 row["lr"], self.speeds[-1])

    def _write_logs(self, plot: bool) -> None:
        write_results_csv(self.files.results, self.history)
        write_lr_csv(self.files.lr, self.lr_rows)
        if plot:
            plot_curves(self.files.plot, self.history, self.lr_rows)

    def _state(self, epochs_completed: int) -> dict[str, Any]:
        """What --resume needs beyond the weights (last.pt only)."""
        import torch

        return {
            "epochs_completed": epochs_completed,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "scheduler": {"name": self.config.scheduler.name, "epoch": epochs_completed},
            "rng": torch.get_rng_state(),
            "resume_hash": self.resume_hash,
            "history": self.history,
            "lr_log": self.lr_rows,
            "best_val_acc": self.best_val,
            "best_epoch": self.best_epoch,
        }

    def _save(self, path: Path, epoch: int | None, metrics: dict[str, float], extra: dict[str, Any] | None) -> None:
        from toolkit.checkpoint import CheckpointMeta, save_checkpoint

        meta = CheckpointMeta(spec=self.spec, num_classes=self.num_classes, class_names=list(self.data.class_names),
                              config_hash=self.full_hash, weights_source=self.weights_source, epoch=epoch,
                              metrics=metrics)
        save_checkpoint(path, self.core, meta, extra_state=extra)

    def result(self, started: float) -> TrainResult:
        history, files = self.history, self.files
        last_metrics = history[-1] if history else {}
        best_acc = None
        if history and not math.isnan(history[-1]["val_acc"]):
            best_acc = max(h["val_acc"] for h in history)
        return TrainResult(
            out_dir=self.run_dir, best_checkpoint=files.best if files.best.exists() else None,
            last_checkpoint=files.last, results_csv=files.results, epochs_completed=len(history),
            best_epoch=self.best_epoch, best_val_acc=best_acc,
            last_metrics={k: float(v) for k, v in last_metrics.items()}, num_classes=self.num_classes,
            num_train=len(self.data.train_labels), num_val=len(self.data.val_labels),
            images_per_second=float(np.mean(self.speeds)) if self.speeds else 0.0,
            seconds=time.perf_counter() - started, device=str(self.device), amp=self.amp,
            world_size=self.dist.world_size, resumed_from_epoch=self.start_epoch,
        )


def train_from_config_file(path: str | Path, resume: bool = False, overwrite: bool = False,
                           progress: bool = True, **overrides: Any) -> TrainResult:
    """Load the YAML config, apply command-line overrides that are not None, train."""
    config = load_train_config(path)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "weights" in changes:
        # --weights is the offline alternative to `pretrained:` (and replaces any other init).
        changes.update(pretrained=None, init_checkpoint=None, weights=Path(changes["weights"]).resolve())
    if "out_dir" in changes:
        changes["out_dir"] = Path(changes["out_dir"])
    if changes:
        try:
            config = replace(config, **changes)
        except (ConfigError, InputError) as exc:
            raise ConfigError(f"{path} with command-line overrides: {exc.message}") from None
    return train(config, config_path=path, resume=resume, overwrite=overwrite, progress=progress)
