"""Install a set of outputs into a folder as one step that survives Ctrl-C and ``kill -9`` (used by ``ftk export``).

The outputs are built in a work folder inside the destination (``.ftk-export.<x>.tmp/``: same filesystem, so every
move is a rename). When they are complete, each is fsynced, then a plan naming them (``install.json``) is written
and fsynced: that is the commit point. Then each is renamed into place, the one readers trust the folder by (the
manifest) last, and the work folder is removed. An error or Ctrl-C before the commit removes the work folder and
leaves the destination as it was; at or after it, the install is completed (Ctrl-C included). After a ``kill -9``,
the next run into that folder (:func:`finish_interrupted`, under the folder's lock) completes a committed install
and removes an uncommitted one, and the temp files older ftk versions left (``.manifest.json.<x>.tmp``).
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from toolkit.io import check_replaceable, fsync_path

log = logging.getLogger(__name__)

PLAN = "install.json"


@dataclass
class Staging:
    folder: Path  # write the outputs here (plain files; their names are their names in the destination)
    remove: list[str] = field(default_factory=list)  # names in the destination the install deletes (stale outputs)


def _plan(work: Path) -> tuple[list[str], list[str]] | None:
    """(names to install, names to remove) of a committed plan, or None (no plan, or not one ftk wrote: then
    nothing is moved or removed)."""
    try:
        plan = json.loads((work / PLAN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    lists = [plan.get(key) if isinstance(plan, dict) else None for key in ("install", "remove")]
    if not all(isinstance(names, list) and all(map(_plain_name, names)) for names in lists):
        return None
    return lists[0], lists[1]


def _plain_name(name: object) -> bool:
    """A file name in the destination itself (a plan read back from disk names nothing else)."""
    return isinstance(name, str) and name not in ("", ".", "..", PLAN) and Path(name).name == name


def _commit(staging: Staging, last: str | None) -> None:
    """Every output durable, then the plan durable: from here on the install is completed, never undone."""
    work = staging.folder
    names = sorted(p.name for p in work.iterdir() if p.name != PLAN)
    if last in names:
        names.remove(last)
        names.append(last)
    for name in names:
        fsync_path(work / name)
    try:
        with open(work / PLAN, "x", encoding="utf-8") as fh:
            json.dump({"install": names, "remove": sorted(set(staging.remove) - set(names))}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        fsync_path(work)
    except BaseException:
        (work / PLAN).unlink(missing_ok=True)  # not committed: the work folder is dropped, the destination kept
        raise


def _apply(dest: Path, work: Path, names: list[str], remove: list[str]) -> None:
    check_replaceable([dest / name for name in names if (work / name).exists()])
    for name in names:
        if os.path.lexists(work / name):  # moved already by an interrupted try
            os.replace(work / name, dest / name)
    for name in remove:  # after the manifest: what it no longer lists
        (dest / name).unlink(missing_ok=True)
    fsync_path(dest)
    (work / PLAN).unlink(missing_ok=True)  # installed: what is left of the work folder is rubbish
    shutil.rmtree(work, ignore_errors=True)


def _complete(dest: Path, work: Path) -> None:
    """Finish a committed install; a Ctrl-C in the middle is held until the renames are done."""
    names, remove = _plan(work) or ([], [])
    try:
        _apply(dest, work, names, remove)
    except KeyboardInterrupt:
        _apply(dest, work, names, remove)
        raise


@contextlib.contextmanager
def staged_install(dest: Path, prefix: str, last: str | None = None) -> Iterator[Staging]:
    """A work folder in ``dest`` to write outputs into; everything in it is installed into ``dest`` as one step
    when the block succeeds (``last``, e.g. the manifest, renamed last; ``Staging.remove`` deleted after), nothing
    when it fails."""
    staging = Staging(dest / f"{prefix}{secrets.token_hex(8)}.tmp")  # named first: found even if Ctrl-C follows
    try:
        staging.folder.mkdir(mode=0o700)
        yield staging
        _commit(staging, last)
    finally:
        if (staging.folder / PLAN).is_file():
            _complete(dest, staging.folder)
        else:
            shutil.rmtree(staging.folder, ignore_errors=True)


def finish_interrupted(dest: Path, prefix: str, outputs: list[str]) -> list[str]:
    """Complete the committed installs a killed run left in ``dest``, remove its uncommitted work folders and the
    temp files of its outputs; what was done, in words. The caller holds ``dest``'s lock."""
    done = []
    if not dest.is_dir():
        return done
    for work in sorted(dest.glob(glob.escape(prefix) + "*.tmp")):
        if work.is_dir() and not work.is_symlink() and _plan(work) is not None:
            _complete(dest, work)
            done.append(f"completed the install of an interrupted run ({work.name})")
        else:
            shutil.rmtree(work) if work.is_dir() and not work.is_symlink() else work.unlink()
            done.append(f"removed {work.name}, left by an interrupted run")
    for name in outputs:
        for temp in dest.glob(f".{glob.escape(name)}.*.tmp"):
            if temp.is_symlink() or temp.is_file():
                temp.unlink()
                done.append(f"removed {temp.name}, left by an interrupted run")
    for line in done:
        log.warning("%s: %s", dest, line)
    return done


__all__ = ["PLAN", "Staging", "finish_interrupted", "staged_install"]
