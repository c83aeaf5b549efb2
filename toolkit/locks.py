"""One ftk process at a time per app checkout, run folder or export folder.

An exclusive ``flock`` on a lock file in ftk's state folder (``state_home()/locks``), named by the folder's real
path, so nothing is written into the folder itself (a read-only app stays untouched, a dry run writes nothing
there). The holder writes its pid and command line into the lock file; a second process exits 2 naming it, or, with
``FTK_LOCK_WAIT=SECONDS``, waits up to that long (saying so once). The kernel drops the lock when its holder dies,
``kill -9`` included, so a stale lock file never blocks anyone. Re-entrant within one process (``deploy`` holds the
app's lock while its ``apply`` takes it again).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Iterator

from toolkit.errors import InputError
from toolkit.io import state_home

log = logging.getLogger(__name__)

WAIT_ENV = "FTK_LOCK_WAIT"
_POLL_S = 0.2
_held: dict[str, int] = {}  # lock key -> how many nested holders in this process


def _key(folder: Path) -> str:
    return hashlib.sha256(str(folder).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _command_line() -> str:
    text = shlex.join(["ftk", *sys.argv[1:]])[:300]
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)  # one line, whatever argv holds


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096) or b"{}")
        return f"pid {int(info['pid'])}: {info['command']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another ftk process"


def _wait_seconds() -> float:
    raw = os.environ.get(WAIT_ENV, "").strip()
    try:
        return max(0.0, min(float(raw), 86400.0)) if raw else 0.0
    except ValueError:
        raise InputError(f"{WAIT_ENV}={raw!r} is not a number of seconds") from None


def _acquire(fd: int, folder: Path, what: str) -> None:
    wait, deadline, told = _wait_seconds(), None, False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _holder(fd)
        deadline = deadline if deadline is not None else time.monotonic() + wait
        if time.monotonic() >= deadline:
            waited = f" (waited {wait:g} s)" if wait else ""
            raise InputError(f"{what} {folder} is in use by {holder}{waited}; nothing was changed",
                             hint=f"let it finish, or set {WAIT_ENV}=SECONDS to wait for it")
        if not told:
            log.warning("%s %s is in use by %s: waiting up to %g s", what, folder, holder, wait)
            told = True
        time.sleep(_POLL_S)


def _open_lock_file(folder: Path, what: str) -> int:
    locks = state_home() / "locks"
    try:
        locks.mkdir(parents=True, exist_ok=True)
        return os.open(locks / f"{_key(folder)}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise InputError(f"cannot lock {what} {folder}: {locks}: {exc.strerror}; nothing was changed",
                         hint="set FTK_STATE_DIR to a writable folder") from None


@contextlib.contextmanager
def exclusive(folder: str | Path, what: str, required: bool = True) -> Iterator[None]:
    """Hold ``folder`` (an app checkout, a run or export folder) for this process; ``what`` names it in messages.
    ``required=False`` (a dry run): go on without the lock when the state folder cannot hold one."""
    folder = Path(folder).resolve()
    key = _key(folder)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd = None
    try:
        fd = _open_lock_file(folder, what)
    except InputError:
        if required:
            raise
    if fd is None:
        yield
        return
    try:
        _acquire(fd, folder, what)
        info = {"pid": os.getpid(), "command": _command_line(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "folder": str(folder)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)  # releases the flock


__all__ = ["WAIT_ENV", "exclusive"]
