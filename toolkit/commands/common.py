"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, is_dataclass
from typing import Any

import click

from toolkit.constants import (  # stdlib only: --help stays free of numpy
    DEFAULT_PICK,
    DEFAULT_THREADS,
    MAX_INPUT_SIZE,
    MAX_THREADS,
    MIN_INPUT_SIZE,
    PICK_RULES,
)

# The shared flags, defined once so each keeps one meaning in every command (docs/cli.md lists them).
FACES_HELP = "Real face photos: a Person/*.jpg folder (detected with MTCNN) or a faces CSV from `ftk prepare`."


def faces_option(old_name: str, help: str, exists: bool = False):
    """--faces DIR_OR_CSV (parameter ``faces``), with the command's old spelling kept as an alias; both spellings
    together are a usage error (click alone would silently keep one)."""
    import functools

    def decorate(command):
        @functools.wraps(command)  # keeps the options declared below this one
        def merged(*args, faces=None, faces_old_spelling=None, **kwargs):
            if faces is not None and faces_old_spelling is not None:
                raise click.UsageError(f"--faces and {old_name} are two spellings of one option; give one "
                                       f"(--faces is the new spelling; got --faces {faces} and {old_name} "
                                       f"{faces_old_spelling})")
            return command(*args, faces=faces if faces is not None else faces_old_spelling, **kwargs)

        merged = click.option(old_name, "faces_old_spelling", type=click.Path(exists=exists), default=None,
                              hidden=True)(merged)
        return click.option("--faces", "faces", type=click.Path(exists=exists), default=None, metavar="DIR_OR_CSV",
                            help=f"{FACES_HELP} {help} (Old spelling: {old_name}.)")(merged)

    return decorate


def _quiet_logs(ctx: click.Context, param: click.Parameter, quiet: bool) -> bool:
    if quiet:  # ftk's own INFO lines ("converting ...") go too; warnings and errors stay
        logging.getLogger("toolkit").setLevel(logging.WARNING)
    return quiet


def quiet_option(*old_names: str):
    """--quiet (parameter ``quiet``): no progress bars and no INFO log lines; the result is still printed."""
    old = f" (Old spelling: {', '.join(old_names)}.)" if old_names else ""
    return click.option("--quiet", *old_names, "quiet", is_flag=True, callback=_quiet_logs,
                        help=f"No progress bars or progress log lines (the result, warnings and errors are still "
                             f"printed).{old}")


def pick_option(help: str = ""):
    """--pick center|confidence (parameter ``pick``): which face to use when MTCNN finds several."""
    return click.option("--pick", type=click.Choice(PICK_RULES), default=DEFAULT_PICK, show_default=True,
                        help="Which face to use when MTCNN finds several: the one nearest the image centre or the "
                             f"most confident.{' ' + help if help else ''}")


FACES_PICK_NOTE = "For --faces photos (a faces CSV carries the face `ftk prepare` picked)."

# One integer in one range everywhere (bench, which times several, repeats it and checks the same range).
THREADS_RANGE = click.IntRange(1, MAX_THREADS)
threads_option = click.option("--threads", "num_threads", type=THREADS_RANGE, default=DEFAULT_THREADS,
                              show_default=True,
                              metavar="N", help=f"LiteRT interpreter threads (1..{MAX_THREADS}).")


def echo_json(obj: Any) -> None:
    if is_dataclass(obj):
        obj = asdict(obj)
    click.echo(json.dumps(obj, indent=2, default=str))


def check_input_size(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """The callback of every --input-size: one range (ModelSpec checks the same one in files)."""
    if value is not None and not MIN_INPUT_SIZE <= value <= MAX_INPUT_SIZE:
        raise click.BadParameter(f"{value} is not a face model input size ({MIN_INPUT_SIZE}..{MAX_INPUT_SIZE} px)")
    return value


def embedder_options(func):
    """--backbone/--input-size/--normalization/--align/--threads: how to read and run a model file."""
    func = threads_option(func)
    func = click.option("--align/--box-crop", "align", default=None,
                        help="Crop faces by 5-point alignment or by detector box (default: the model's spec).")(func)
    func = click.option("--normalization", default=None,
                        help="For a foreign .tflite: host-side MEAN,STD in pixel units, e.g. 127.5,128. "
                             "NHWC float32 input is assumed.")(func)
    func = click.option("--input-size", type=int, default=None, callback=check_input_size,
                        help="For a foreign .tflite: its square input size (NHWC assumed).")(func)
    func = click.option("--backbone", default=None,
                        help="Backbone of a plain state_dict (e.g. mobilefacenet); not needed for ftk checkpoints.")(func)
    return func


def model_flags(backbone, input_size, normalization, align) -> str:
    """The flags that describe the model on the command line, as given (for a hint's `ftk evaluate MODEL ...`)."""
    flags = [f"--backbone {backbone}" if backbone else "", f"--input-size {input_size}" if input_size else "",
             f"--normalization {normalization}" if normalization else "",
             "" if align is None else "--align" if align else "--box-crop"]
    return " ".join(f for f in flags if f)


def build_embedder_options(backbone, input_size, normalization, align, num_threads, weights=None):
    from toolkit.embedders import EmbedderOptions

    crop = None if align is None else ("align" if align else "box")
    return EmbedderOptions(backbone=backbone, weights=weights, input_size=input_size, normalization=normalization,
                           crop=crop, num_threads=num_threads)
