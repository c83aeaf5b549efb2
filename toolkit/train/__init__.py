"""Train or fine-tune a backbone + linear classifier head on a faces CSV from ``ftk prepare``.

One process per device. Under ``torchrun`` (``WORLD_SIZE`` > 1) the same code runs as DistributedDataParallel with a
``DistributedSampler``; without it, a single process on CUDA (with autocast mixed precision) or the CPU.

Data: the CSV's train/val splits, optionally minus the identities of an LFW pairs file (a leak-free development
loop), cropped once per the model's spec and cached as uint8 under the run folder; augmentation runs batched on the
training device (flip, small random resized crop/shift/rotation, small colour jitter; never a vertical flip).

Outputs in the run folder (all written atomically, by rank 0): ``last.pt`` (with optimizer/epoch state for
``--resume``), ``best.pt`` (best validation accuracy), ``results.csv`` (one row per epoch), ``lr.csv`` (learning rate
every ``log_interval`` steps), ``curves.png`` (loss/accuracy/lr) and ``config.resolved.yaml``.

Modules: :mod:`~toolkit.train.stage` (:func:`train`, :func:`train_from_config_file`), :mod:`~toolkit.train.config`,
:mod:`~toolkit.train.data`, :mod:`~toolkit.train.model_init`, :mod:`~toolkit.train.trainer` (the loop),
:mod:`~toolkit.train.schedule`, :mod:`~toolkit.train.augment`, :mod:`~toolkit.train.loss`,
:mod:`~toolkit.train.distributed` and :mod:`~toolkit.train.outputs`. Every public name is importable from
``toolkit.train``.
"""

from __future__ import annotations

from toolkit.train.augment import augment_batch
from toolkit.train.config import (
    DOWNLOAD_TIMEOUT_S, PRETRAINED_BACKBONE, PRETRAINED_URLS, RUNTIME_KEYS, AugmentConfig, DataConfig, LossConfig,
    SchedulerConfig, TrainConfig, load_train_config,
)
from toolkit.train.data import TrainData, identities_in_pairs, load_train_data, select_records
from toolkit.train.loss import classification_loss
from toolkit.train.model_init import check_weights_file, fetch_pretrained, training_spec
from toolkit.train.outputs import RESULTS_COLUMNS, plot_curves, write_lr_csv, write_results_csv
from toolkit.train.schedule import lr_at
from toolkit.train.stage import train, train_from_config_file
from toolkit.train.trainer import Trainer, TrainResult

__all__ = [
    "DOWNLOAD_TIMEOUT_S", "PRETRAINED_BACKBONE", "PRETRAINED_URLS", "RESULTS_COLUMNS", "RUNTIME_KEYS",
    "AugmentConfig", "DataConfig", "LossConfig", "SchedulerConfig", "TrainConfig", "TrainData", "TrainResult",
    "Trainer", "augment_batch", "check_weights_file", "classification_loss", "fetch_pretrained",
    "identities_in_pairs", "load_train_config", "load_train_data", "lr_at", "plot_curves", "select_records", "train",
    "train_from_config_file", "training_spec", "write_lr_csv", "write_results_csv",
]
