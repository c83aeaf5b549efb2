from __future__ import annotations

import click

from toolkit.commands.common import echo_json, quiet_option
from toolkit.wording import plural


@click.command("train")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Training config (YAML), e.g. train/configs/tiny_smoke.yaml. Paths in it are relative to it.")
@click.option("--resume", is_flag=True, help="Continue the run in the output folder from its last.pt.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Run folder (default: the config's out_dir, else runs/<config name>).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Local backbone state_dict to start from (the offline alternative to `pretrained: vggface2`).")
@click.option("--epochs", type=int, default=None, help="Override the config's number of epochs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Override the config's device (auto: CUDA when present).")
@click.option("--overwrite", is_flag=True, help="Start again in a run folder that already holds checkpoints.")
@quiet_option("--no-progress")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def train_cmd(config_path, resume, out_dir, weights, epochs, device, overwrite, quiet, as_json):
    """Train or fine-tune a backbone + classifier head from a YAML config (multi-GPU: run under torchrun)."""
    from toolkit.train import train_from_config_file

    result = train_from_config_file(config_path, resume=resume, overwrite=overwrite, progress=not (quiet or as_json),
                                    out_dir=out_dir, weights=weights, epochs=epochs, device=device)
    if result.rank != 0:  # under torchrun every process trains; one summary is enough
        return
    if as_json:
        echo_json(result)
        return
    m = result.last_metrics
    click.echo(f"trained {plural(result.epochs_completed, 'epoch')} ({plural(result.num_classes, 'identity', 'identities')}"
               f", {result.num_train} train / {result.num_val} val faces) on {result.device} (amp {result.amp}, "
               f"{plural(result.world_size, 'process', 'processes')}) "
               f"in {result.seconds:.1f} s, {result.images_per_second:.1f} images/s")
    if m:
        click.echo(f"last epoch: train loss {m['train_loss']:.4f} acc {m['train_acc']:.3f}, "
                   f"val loss {m['val_loss']:.4f} acc {m['val_acc']:.3f}")
    if result.best_val_acc is not None:
        click.echo(f"best val acc {result.best_val_acc:.3f} (epoch {result.best_epoch})")
    click.echo(f"checkpoints: {result.best_checkpoint} (best), {result.last_checkpoint} (last); "
               f"curves and results.csv in {result.out_dir}")
