"""The training loop: :class:`Trainer` (one process's share of a run) and the :class:`TrainResult` it returns."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from toolkit.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from toolkit.config import config_hash, dump_config_yaml
from toolkit.errors import CheckpointError, ConfigError, InputError, NoFacesError
from toolkit.io import write_text_atomic
from toolkit.train.augment import augment_batch
from toolkit.train.config import RUNTIME_KEYS, TrainConfig
from toolkit.train.data import TrainData, load_train_data
from toolkit.train.distributed import _all_sum, _barrier, _Dist
from toolkit.train.loss import classification_loss
from toolkit.train.model_init import _build_model, training_spec
from toolkit.train.outputs import plot_curves, write_lr_csv, write_results_csv
from toolkit.train.schedule import lr_at

if TYPE_CHECKING:
    import torch

log = logging.getLogger("toolkit.train")  # one logger for the stage: log lines keep the name they always had


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
    rank: int = 0  # this process's rank under torchrun: only rank 0 reports


def _resolve_amp(config: TrainConfig, device: "torch.device") -> str:
    import torch

    if config.amp == "off" or (config.amp == "auto" and device.type != "cuda"):
        return "off"
    if config.amp == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if config.amp == "fp16" and device.type != "cuda":
        raise ConfigError("amp: fp16 needs CUDA; use bf16 or off on the CPU")
    return config.amp


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
            world_size=self.dist.world_size, resumed_from_epoch=self.start_epoch, rank=self.dist.rank,
        )
