"""Small file helpers: atomic writes (one file, several together, a folder), hashing, output and free-space checks.

Outputs get the usual ``0666 & ~umask`` mode (``mkstemp`` alone would leave them 0600), and a full disk is reported
as ``no space left on <folder>`` (exit 2) with no temp file left behind.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from toolkit.constants import cache_root
from toolkit.errors import InputError, OutputExistsError


def is_relative_inside(stored: Any) -> bool:
    """Whether a path read back from a file ftk did not just write (a journal, a stage record, a report) names
    something under its root: a non-empty relative path without ``..`` or NUL. Links are the caller's to resolve."""
    if not isinstance(stored, str) or not stored or "\0" in stored:
        return False
    path = PurePosixPath(stored)
    return not path.is_absolute() and ".." not in path.parts


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_temp(final: Path) -> Path:
    ensure_writable_dir(final.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # like any other tool's outputs, not mkstemp's 0600
    return Path(tmp)


_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_replaceable(paths: list[Path]) -> None:
    """An output may replace only a regular file (or a link to one): a device (``/dev/full``, even through a link),
    a FIFO, a socket or a folder at an output path is exit 2, before and again just before the rename (replacing a
    device node with a file broke it for the whole machine)."""
    for path in paths:
        try:
            mode = os.stat(path).st_mode  # through a link: what a user named is what it leads to
        except OSError:  # absent, or a dangling link: nothing but the name is replaced
            continue
        kind = next((what for test, what in _NOT_REGULAR if test(mode)), None if stat.S_ISREG(mode) else "not a file")
        if kind is not None:
            shown = f"{path} (a link to {os.path.realpath(path)})" if os.path.islink(path) else str(path)
            raise InputError(f"output {shown} is {kind}, not a regular file: ftk replaces only regular files",
                             hint="write the output to a file path")


@contextlib.contextmanager
def atomic_outputs(finals: list[Path]) -> Iterator[list[Path]]:
    """Temp paths for outputs written together: all are renamed into place only if the block succeeds, none
    otherwise, and no temp file is left either way (a full disk becomes ``no space left on <folder>``). Only a
    regular file is ever replaced (:func:`check_replaceable`)."""
    finals = [Path(f) for f in finals]
    check_replaceable(finals)
    temps: list[Path] = []
    try:
        with disk_full_is_input_error(finals[0].parent if finals else Path(".")):
            temps += [_new_temp(final) for final in finals]
            yield temps
            check_replaceable(finals)
            for tmp, final in zip(temps, finals):
                os.replace(tmp, final)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temp path in the destination folder; rename it over ``final`` only if the block succeeds."""
    with atomic_outputs([Path(final)]) as temps:
        yield temps[0]


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Build a folder under a temp name beside ``final``; it replaces ``final`` (absent or empty) only if the block
    succeeds, and the temp folder is removed whatever happens (no hidden leftovers keeping a disk full)."""
    final = Path(final)
    ensure_writable_dir(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        with disk_full_is_input_error(final.parent):
            yield tmp
        os.replace(tmp, final)  # POSIX: onto an empty folder or nothing; a non-empty one fails (ENOTEMPTY)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fsync_path(path: str | Path) -> None:
    """Make a file's content, or a folder's names (a rename, a new file), durable: on disk once this returns."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    return parse_json(path.read_bytes(), f"{what} {path}")


def parse_json(data: str | bytes, what: str) -> Any:
    """JSON from a file ftk did not just write; every way it can be crafted to fail is an InputError naming
    ``what``: bad syntax or UTF-8, a number past Python's 4300-digit limit, nesting deeper than the interpreter's
    recursion limit (100,000 ``[``)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise InputError(f"{what} nests arrays or objects too deeply to be read") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError, as is a 5001-digit number
        raise InputError(f"{what} is not valid JSON: {str(exc)[:200]}") from None


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check we can write there, with a clear error if not."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"output folder {path} is not writable", hint="choose another --out or fix permissions")
    return path


def check_outputs_free(paths: list[Path], overwrite: bool) -> None:
    """Refuse existing outputs unless ``overwrite``, and anything that is not a regular file even then."""
    check_replaceable([Path(p) for p in paths])
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"output already exists: {', '.join(existing)}", hint="pass --overwrite to replace")


def free_bytes(path: str | Path) -> int:
    """Free bytes on the filesystem that holds ``path`` (or would: its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def no_space_error(folder: str | Path, detail: str = "") -> InputError:
    return InputError(f"no space left on {folder}{detail}", hint="free some space there or write somewhere else (--out)")


def check_free_space(folder: str | Path, needed: int, what: str) -> None:
    """Refuse up front (exit 2) when ``folder``'s filesystem has less than ``needed`` bytes free for ``what``."""
    free = free_bytes(folder)
    if free < needed:
        raise no_space_error(folder, f": {what} needs about {_mib(needed)}, {_mib(free)} free")


@contextlib.contextmanager
def disk_full_is_input_error(folder: str | Path) -> Iterator[None]:
    """Turn a full disk met while writing under ``folder`` into ``no space left on <folder>`` (exit 2)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise no_space_error(folder) from None
        raise
    except RuntimeError as exc:  # torch.save reports ENOSPC as "PytorchStreamWriter failed writing file ..."
        if "writ" in str(exc) and free_bytes(folder) < 2**20:
            raise no_space_error(folder) from None
        raise


@contextlib.contextmanager
def removed_if_failed(folder: str | Path) -> Iterator[None]:
    """If the block fails, remove ``folder`` and the parents it needed, when this call created them and they are
    empty again (a failed or interrupted run leaves no empty output folders)."""
    folder = Path(folder).absolute()
    missing = [p for p in [folder, *folder.parents] if not os.path.lexists(p)]  # deepest first
    try:
        yield
    except BaseException:
        for path in missing:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


def check_writable_location(path: str | Path, what: str = "output folder") -> None:
    """Check, without creating anything, that ``path`` exists as a writable folder or could be created."""
    path = Path(path).absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot create {what} {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{what} {existing} is not writable", hint="choose another --out or fix permissions")


def copy_writable(source: str | Path, target: str | Path) -> Path:
    """``source`` copied to ``target`` (links kept as links) with the owner's write bit on every copied file and
    folder: a copy a user can edit even when the source is read-only (../shared is)."""
    target = Path(target)
    shutil.copytree(source, target, symlinks=True)
    for folder, dirs, files in os.walk(target):
        for path in (Path(folder) / name for name in [*dirs, *files]):
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
    target.chmod(target.stat().st_mode | stat.S_IWUSR)
    return target


def state_home() -> Path:
    """Per-user ftk state that must not live in a project or app folder: $FTK_STATE_DIR, else $FTK_CACHE_DIR/state
    (a relocated ftk, e.g. a test run, keeps all its files together), else $XDG_STATE_HOME/ftk or
    ~/.local/state/ftk."""
    if os.environ.get("FTK_STATE_DIR"):
        return Path(os.environ["FTK_STATE_DIR"])
    if os.environ.get("FTK_CACHE_DIR"):
        return cache_root() / "state"
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "ftk"
