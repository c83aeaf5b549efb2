"""The ``ftk`` command line: a thin click layer over the library.

Subcommands live in ``toolkit.commands.<stage>`` and are imported only when run, so ``ftk --help`` stays instant
(no torch, no litert). Library errors (:class:`toolkit.errors.ToolkitError`) and click usage errors become one line
``error: ...`` on stderr and their exit code (2 for bad input, 1 for a failed check). Anything else is a bug in
ftk: ``internal error: ... please report`` and exit code 3 (never 1, which means "a check failed"), with the
traceback in a log file under the ftk state folder, or on stderr with ``-v``.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import time
import traceback

import click

from toolkit import __version__, native_logs
from toolkit.errors import ToolkitError
from toolkit.io import state_home
from toolkit.wording import did_you_mean

INTERNAL_ERROR_EXIT = 3
_verbosity = 0  # set by the group callback; main() reads it to decide where a traceback goes

# name -> (module:attribute, one-line help shown by `ftk --help` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("toolkit.commands.prepare:prepare_cmd", "Detect faces (MTCNN) in Person_Name/*.jpg; write faces.csv, splits, labels, contact sheet."),
    "train": ("toolkit.commands.train:train_cmd", "Train or fine-tune a backbone + classifier head from a YAML config."),
    "evaluate": ("toolkit.commands.evaluate:evaluate_cmd", "Classification accuracy and LFW-protocol verification for a checkpoint or .tflite."),
    "init-checkpoint": ("toolkit.commands.init_checkpoint:init_checkpoint_cmd", "Create a checkpoint without training (random or local weights, BN calibrated on faces)."),
    "export": ("toolkit.commands.export:export_cmd", "Export the head-less embedding model to float32 and int8 TFLite with a manifest."),
    "parity-check": ("toolkit.commands.parity:parity_cmd", "Prove a .tflite computes the same embeddings as its PyTorch checkpoint."),
    "bench": ("toolkit.commands.bench:bench_cmd", "Latency of .tflite models on the host or an adb-connected Android device."),
    "deploy": ("toolkit.commands.deploy:deploy_cmd", "Put an exported model into an Android app checkout and patch its constants, safely."),
    "compare": ("toolkit.commands.compare:compare_cmd", "Cosine similarity between the faces in a few images."),
    "match": ("toolkit.commands.compare:match_cmd", "1:N match of a probe face against an enrolled gallery, as the app does."),
    "pipeline": ("toolkit.commands.pipeline:pipeline_cmd", "Run prepare -> train -> evaluate -> export -> parity -> bench -> deploy from one YAML."),
    "info": ("toolkit.commands.info:info_cmd", "Show what a checkpoint, .tflite or export folder contains."),
    "cache": ("toolkit.commands.cache:cache_cmd", "Show what ftk's cache holds per kind, with sizes; `ftk cache clean` removes it."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            ctx.fail(f"no such command {name!r}; "
                     + did_you_mean(name, COMMANDS, otherwise=f"the commands: {', '.join(sorted(COMMANDS))}"))
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="ftk")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """ftk: take a face-embedding model from training to an Android phone, checking every step."""
    global _verbosity
    _verbosity = verbose
    native_logs.configure(verbose)  # the native libraries' INFO/WARNING lines only with -v
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("toolkit").setLevel(logging.INFO if verbose == 0 else level)


# C0/C1 controls, DEL and the Unicode line/paragraph separators: anything a terminal or a log reader could take as
# a line break or a command. A file name holding one must not forge a second "error:" line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with every control character written as its escape (``\\n``, ``\\x1b``): one line stays one line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _one_line(text: str) -> str:
    return printable(" ".join(text.split()))


def _usage_error(exc: click.UsageError) -> None:
    where = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
    click.echo(f"error: {_one_line(exc.format_message())}{where}", err=True)
    sys.exit(2)


def _crash_log(text: str) -> str | None:
    """Write the traceback to <state>/crash-<time>-<pid>.log; None when even that fails."""
    try:
        folder = state_home()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path.write_text(f"ftk {__version__}\nargv: {sys.argv}\n\n{text}", encoding="utf-8")
        return str(path)
    except OSError:
        return None


def _internal_error(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc))
    log_path = None if _verbosity else _crash_log(text)
    if log_path is None:
        sys.stderr.write(text)
    where = f"; traceback in {log_path}" if log_path else ""
    click.echo(f"internal error: {type(exc).__name__}: {_one_line(str(exc))[:300]}{where}; please report this "
               "(it is a bug in ftk, not in your input)", err=True)
    sys.exit(INTERNAL_ERROR_EXIT)


def main(argv: list[str] | None = None) -> None:
    native_logs.configure(0)  # before anything can load a native library; the group callback applies -v
    try:
        cli.main(args=argv, prog_name="ftk", standalone_mode=False)
    except ToolkitError as exc:
        click.echo(f"error: {printable(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:  # `ftk` alone (or a group without its command): the help
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        sys.exit(0)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        _usage_error(exc)
    except click.ClickException as exc:
        click.echo(f"error: {_one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # a bug: say so, keep the traceback, and never exit 1 ("a check failed")
        _internal_error(exc)


if __name__ == "__main__":
    main()
