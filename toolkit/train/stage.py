"""The train stage: :func:`train` and :func:`train_from_config_file` (the YAML config plus command-line
overrides)."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from toolkit.errors import ConfigError, InputError, OutputExistsError
from toolkit.io import disk_full_is_input_error
from toolkit.train.config import TrainConfig, load_train_config
from toolkit.train.distributed import _Dist, _init_distributed
from toolkit.train.model_init import check_weights_file, fetch_pretrained
from toolkit.train.trainer import Trainer, TrainResult

if TYPE_CHECKING:
    import torch


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
