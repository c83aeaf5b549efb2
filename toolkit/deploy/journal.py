"""The write-ahead journal of ``ftk deploy`` and ``--revert``: durable, trusted only when recorded, and recoverable.

A deploy writes, in this order, each step durable (file and folder fsynced) before the next: the originals and a
``pending`` journal in a staging folder renamed into ``.ftk-deploy/backup-<stamp>/``; the new contents in temp files
whose names the journal already lists; the renames over the targets; the journal rewritten ``applied``. A revert
rewrites the journal ``reverting`` (with its own temp names) before it touches a file, and ``reverted`` when done.
Progress is each file's content: a rename is atomic, so every target holds exactly its ``sha256_before`` or its
``sha256_after`` (or, for a file the deploy adds, is absent or ``sha256_after``).

Whoever runs ftk next on that app (``deploy``, ``--revert``) first finishes the job (``recover_unfinished``): a
``pending`` deploy is rolled back (it never finished, so the app goes back to before it), a ``reverting`` revert is
completed; either way every file ends at its ``sha256_before``, the temp files the journal names and the staging
folders are removed, and the command says which it did. Every step of that is idempotent, so a kill during
recovery is recovered the same way.

Trust (see docs/deploy.md, "A hostile checkout"): everything in the checkout may be forged. Each journal version
ftk acts on is recorded, by the sha256 of its exact bytes, in ftk's own state folder outside the checkout before it
is written into the app; a journal whose bytes are not recorded there is never acted on, and every path in one that
is must stay inside the app (backups inside their backup folder, temp names plain file names).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import InputError
from toolkit.io import fsync_path, is_relative_inside, state_home

log = logging.getLogger(__name__)

STATE_DIR = ".ftk-deploy"
JOURNAL = "journal.json"
JOURNAL_FORMAT = 3  # 3: write-ahead (pending/applied/reverting/reverted), temp names, state_dir_created
TEMP_SUFFIX = ".ftk-tmp"
UNFINISHED = ("pending", "reverting")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TEMP_NAME = re.compile(r"\.[^/\0]{1,255}\.[0-9a-f]{16}\.ftk-tmp")
_STAGING_NAME = re.compile(r"\.(\.ftk-deploy|backup-[0-9-]+)\.[0-9a-f]{16}\.ftk-tmp")
_ENTRY_KEYS = ("path", "existed", "backup", "sha256_before", "sha256_after")
_WRITABLE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def sha(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


def rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def temp_name(target: Path) -> str:
    """A hidden, unguessable name beside ``target`` (a planted link of a predictable name is never met)."""
    return f".{target.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}"


def dir_writable(folder: Path) -> bool:
    """A folder this process may write in: access(2) says so AND a write bit is set (a chmod 555 folder stays
    protected when ftk runs as root, for whom access() always says yes)."""
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK) and bool(folder.stat().st_mode & _WRITABLE_BITS)


# ----------------------------------------------------------------------------------------------------------------
# durable file operations: a step is on disk (file and folder entry) before the next begins
# ----------------------------------------------------------------------------------------------------------------
def create_exclusive(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write a new file and fsync it: never an existing one, never through a symbolic link (O_EXCL | O_NOFOLLOW).
    ``mode``: the permission bits it gets (else 0666 & ~umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def replace_durably(path: Path, data: bytes) -> None:
    """``path`` now holds ``data``, atomically and durably (temp file beside it, fsync, rename, fsync folder)."""
    tmp = path.with_name(temp_name(path))
    create_exclusive(tmp, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def read_nofollow(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def remove_tree(path: Path) -> None:
    """Remove a folder ftk staged, or whatever took its name, never following a symbolic link out of it."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def remove_dirs(dirs: list[Path]) -> None:
    """Remove the folders a deploy created, deepest first, each only if empty (a user's file there keeps it)."""
    for folder in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()
            fsync_path(folder.parent)


# ----------------------------------------------------------------------------------------------------------------
# journal versions recorded outside the checkout
# ----------------------------------------------------------------------------------------------------------------
def journal_bytes(journal: dict[str, Any]) -> bytes:
    return (json.dumps(journal, indent=2, default=str) + "\n").encode("utf-8")


def _index_path(digest: str) -> Path:
    return state_home() / "deploy-journals" / f"{digest}.json"


def record(root: Path, folder: Path, data: bytes) -> None:
    """Record this exact journal version for the app ``root`` and backup folder ``folder``, durably."""
    path = _index_path(sha(data))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_durably(path, journal_bytes({"app": str(root), "backup": folder.name}))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InputError(f"no space left on {path.parent} (recording this deploy for --revert); nothing was "
                             "changed", hint="free some space there, or set FTK_STATE_DIR elsewhere") from None
        raise InputError(f"cannot record this deploy for --revert under {path.parent}: {exc.strerror}; nothing was "
                         "changed", hint="set FTK_STATE_DIR to a writable folder outside the app") from None


def is_recorded(root: Path, folder: Path, data: bytes) -> bool:
    try:
        entry = json.loads(_index_path(sha(data)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(entry, dict) and entry.get("app") == str(root) and entry.get("backup") == folder.name


def forget(digest: str | None) -> None:
    if isinstance(digest, str) and _HEX64.fullmatch(digest):
        with contextlib.suppress(OSError):
            _index_path(digest).unlink(missing_ok=True)


def read_journal(folder: Path) -> tuple[bytes, Any] | None:
    """(exact bytes, parsed) of ``folder``'s journal; None when missing, a link or not JSON."""
    try:
        raw = read_nofollow(folder / JOURNAL) if not folder.is_symlink() else None
        return (raw, json.loads(raw)) if raw is not None else None
    except (OSError, ValueError):
        return None


def state_dir_problem(root: Path) -> str | None:
    state = root / STATE_DIR
    if state.is_symlink() or (state.exists() and not state.is_dir()):
        return f"{STATE_DIR} exists and is not a folder (ftk deploy keeps its backups there: move it away)"
    return None


def backup_folders(root: Path) -> list[Path]:
    state = root / STATE_DIR
    if state_dir_problem(root) or not state.is_dir():
        return []
    return sorted(p for p in state.glob("backup-*") if not p.is_symlink() and p.is_dir())


def recorded_versions(root: Path, statuses: tuple[str, ...]) -> list[tuple[Path, bytes, dict[str, Any]]]:
    """(folder, bytes, journal) of the app's journals in one of ``statuses`` that ftk recorded (oldest first)."""
    out = []
    for folder in backup_folders(root):
        read = read_journal(folder)
        if read and isinstance(read[1], dict) and read[1].get("status") in statuses \
                and is_recorded(root, folder, read[0]):
            out.append((folder, read[0], read[1]))
    return out


# ----------------------------------------------------------------------------------------------------------------
# a journal's entries, checked: paths inside the app, backups inside their folder
# ----------------------------------------------------------------------------------------------------------------
class Refused(Exception):
    """A journal that is not what ftk deploy writes (turned into one InputError naming the journal)."""


@dataclass
class Entry:
    rel: str
    target: Path  # resolved, inside the app root
    backup: Path | None  # inside the backup folder (None: the deploy created the file)
    sha256_before: str | None
    sha256_after: str
    temp: Path | None  # the temp file beside the target the journal reserves (None: a format-2 journal)


def inside_root(stored: Any, root: Path, what: str) -> Path:
    if not isinstance(stored, str) or not stored or "\0" in stored:
        raise Refused(f"{what} is not a path")
    if not is_relative_inside(stored):
        raise Refused(f"{what} {stored!r} is not a path inside the app")
    real = (root / stored).resolve()
    if not real.is_relative_to(root) or real == root or real.is_relative_to(root / STATE_DIR):
        raise Refused(f"{what} {stored!r} leads outside the app (to {real})")
    return real


def _inside_backup(name: Any, folder: Path, what: str) -> Path:
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", "..", JOURNAL):
        raise Refused(f"{what} {name!r} is not a file name in the backup folder")
    path = folder / name
    if path.is_symlink() or not path.is_file():
        raise Refused(f"{what} {name!r} is missing from the backup folder or not a regular file")
    return path


def _temp_beside(name: Any, target: Path, what: str) -> Path | None:
    if name is None:
        return None
    if not isinstance(name, str) or not _TEMP_NAME.fullmatch(name) or "/" in name:
        raise Refused(f"{what} {name!r} is not an ftk temp file name")
    return target.parent / name


def _checked_entry(entry: Any, what: str, root: Path, folder: Path) -> Entry:
    if not isinstance(entry, dict) or any(key not in entry for key in _ENTRY_KEYS):
        raise Refused(f"{what} must be an object with {', '.join(_ENTRY_KEYS)}")
    existed, before, after = entry["existed"], entry["sha256_before"], entry["sha256_after"]
    if not isinstance(existed, bool) or not (isinstance(after, str) and _HEX64.fullmatch(after)):
        raise Refused(f"{what}: 'existed' must be true/false and 'sha256_after' a sha256")
    has_before = isinstance(before, str) and bool(_HEX64.fullmatch(before))
    if existed != has_before or (not existed and entry["backup"] is not None):
        raise Refused(f"{what}: an existing file needs 'sha256_before' and 'backup', a new one neither")
    target = inside_root(entry["path"], root, f"{what}.path")
    backup = _inside_backup(entry["backup"], folder, f"{what}.backup") if existed else None
    return Entry(entry["path"], target, backup, before, after, _temp_beside(entry.get("temp"), target, f"{what}.temp"))


def checked_journal(journal: dict[str, Any], root: Path, folder: Path) -> tuple[list[Entry], list[Path]]:
    files, dirs = journal.get("files"), journal.get("created_dirs", [])
    if not isinstance(files, list) or not files:
        raise Refused("'files' must be a non-empty list")
    if not isinstance(dirs, list):
        raise Refused("'created_dirs' must be a list")
    entries = [_checked_entry(entry, f"files[{i}]", root, folder) for i, entry in enumerate(files)]
    return entries, [inside_root(d, root, f"created_dirs[{i}]") for i, d in enumerate(dirs)]


# ----------------------------------------------------------------------------------------------------------------
# every file back to its sha256_before: the end of a revert, and the rollback of a deploy that did not finish
# ----------------------------------------------------------------------------------------------------------------
def current_bytes(path: Path, root: Path) -> bytes | None:
    if not os.path.lexists(path):
        return None
    if path.is_symlink() or not path.is_file():
        raise InputError(f"cannot revert: {rel(path, root)} is no longer a regular file", hint="move it away")
    return read_nofollow(path)


def _needs_restore(entry: Entry, root: Path) -> bool | None:
    """False: at its sha256_before; True: at its sha256_after (or an original that went missing); None: neither
    (edited since)."""
    digest = sha(current_bytes(entry.target, root))
    if digest == entry.sha256_before:
        return False
    if digest == entry.sha256_after or (digest is None and entry.backup is not None):
        return True
    return None


def _put_back(entry: Entry) -> None:
    """The original over the target, atomically: a hard link to the backup under the entry's temp name (no space
    needed on a full disk, and the backup stays), renamed over the target; a copy where links are not possible."""
    original = read_nofollow(entry.backup)
    if sha(original) != entry.sha256_before:
        raise InputError(f"backup {entry.backup} is damaged (checksum mismatch)", hint="restore that file from git")
    tmp = entry.temp or entry.target.with_name(temp_name(entry.target))
    try:
        os.link(entry.backup, tmp, follow_symlinks=False)
    except OSError:
        create_exclusive(tmp, original, stat.S_IMODE(os.lstat(entry.backup).st_mode))
    os.replace(tmp, entry.target)


def back_to_before(root: Path, entries: list[Entry], dirs: list[Path], force: bool) -> tuple[list[str], list[str]]:
    """Every entry at its sha256_before, its temp file gone, the folders the deploy created removed (if empty);
    (restored, removed). A file edited since is an InputError unless ``force`` (nothing changed then)."""
    for entry in entries:
        if entry.temp is not None:
            entry.temp.unlink(missing_ok=True)  # a temp never reached its rename: never a link followed
    todo = [(entry, _needs_restore(entry, root)) for entry in entries]
    edited = [entry.rel for entry, needed in todo if needed is None]
    if edited and not force:
        raise InputError("these files changed since ftk deploy wrote them: " + ", ".join(edited)
                         + "; reverting would lose those edits", hint="commit or copy your edits, then revert again "
                                                                      "(or ftk deploy --revert --force)")
    restored, removed = [], []
    for entry, needed in todo:
        if needed is False:
            continue
        if entry.backup is None:
            entry.target.unlink(missing_ok=True)
            removed.append(entry.rel)
        else:
            _put_back(entry)
            restored.append(entry.rel)
    for folder in {entry.target.parent for entry in entries if entry.target.parent.is_dir()}:
        fsync_path(folder)
    remove_dirs(dirs)
    return restored, removed


def pending_to_undo(root: Path, entries: list[Entry]) -> tuple[list[str], list[str]]:
    """What ``back_to_before`` would restore and remove (a dry run)."""
    todo = [entry for entry in entries if _needs_restore(entry, root) is not False]
    return [e.rel for e in todo if e.backup is not None], [e.rel for e in todo if e.backup is None]


def discard_backup(root: Path, folder: Path, digests: list[str | None], state_dir_created: bool) -> None:
    """Drop a rolled-back deploy's backup folder: renamed to a staging name first (one atomic step, swept by the
    next recovery if killed), its records forgotten, then deleted; ``.ftk-deploy/`` too if the deploy created it."""
    trash = folder.with_name(f".{folder.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}")
    os.rename(folder, trash)
    fsync_path(folder.parent)
    for digest in digests:
        forget(digest)
    remove_tree(trash)
    if state_dir_created:
        with contextlib.suppress(OSError):  # not empty: an older deploy's backup lives there
            (root / STATE_DIR).rmdir()
            fsync_path(root)


def finish_revert(folder: Path, journal: dict[str, Any], raw: bytes) -> None:
    """The journal says ``reverted`` (never acted on again) and its recorded versions are forgotten."""
    done = {k: v for k, v in journal.items() if k not in ("revert_force", "applied_sha256")}
    done.update(status="reverted", reverted=time.strftime("%Y%m%d-%H%M%S"))
    replace_durably(folder / JOURNAL, journal_bytes(done))
    forget(sha(raw))
    forget(journal.get("applied_sha256"))


def sweep_staging(root: Path) -> None:
    """Remove what a killed ftk left before its journal was in place: staging folders (``..ftk-deploy.<hex>.ftk-tmp``
    in the app, ``.backup-*.<hex>.ftk-tmp`` in ``.ftk-deploy/``) and journal temp files. Only names ftk makes."""
    state = root / STATE_DIR
    places = [root] + ([state] if not state_dir_problem(root) and state.is_dir() else [])
    for place in places:
        for path in place.iterdir():
            if _STAGING_NAME.fullmatch(path.name):
                remove_tree(path)
    for folder in backup_folders(root):
        for path in folder.iterdir():
            if path.name.startswith(f".{JOURNAL}.") and _TEMP_NAME.fullmatch(path.name):
                path.unlink()


# ----------------------------------------------------------------------------------------------------------------
# recovery: the first thing every command that changes an app does
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Recovery:
    action: str  # "rolled back" | "completed" (a dry run: "would roll back" | "would complete")
    backup: str  # the backup folder of the unfinished journal
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    message: str = ""


def _recover_one(root: Path, folder: Path, raw: bytes, journal: dict[str, Any], force: bool,
                 dry_run: bool) -> Recovery:
    try:
        entries, dirs = checked_journal(journal, root, folder)
    except Refused as exc:
        raise InputError(f"cannot finish the interrupted ftk deploy recorded in {rel(folder / JOURNAL, root)}: {exc}",
                         hint=f"restore the app from version control, then delete {rel(folder, root)}/") from None
    deploy = journal["status"] == "pending"
    what = f"an interrupted ftk deploy ({folder.name})" if deploy else f"an interrupted ftk deploy --revert of " \
                                                                        f"{folder.name}"
    if dry_run:
        restored, removed = pending_to_undo(root, entries)
        message = (f"{what} is unfinished: the next ftk deploy or --revert "
                   f"{'rolls it back' if deploy else 'completes it'} ({len(restored)} file(s) to restore, "
                   f"{len(removed)} to remove)")
        return Recovery("would roll back" if deploy else "would complete", str(folder), restored, removed, message)
    restored, removed = back_to_before(root, entries, dirs, force or journal.get("revert_force") is True)
    if deploy:
        applied = journal_bytes({**journal, "status": "applied"})
        discard_backup(root, folder, [sha(raw), sha(applied)], journal.get("state_dir_created") is True)
    else:
        finish_revert(folder, journal, raw)
    action = "rolled back" if deploy else "completed"
    message = (f"{what} was {action}: {len(restored)} file(s) restored, {len(removed)} removed; the app is as it was "
               "before that deploy")
    log.warning(message)
    return Recovery(action, str(folder), restored, removed, message)


def recover_unfinished(root: Path, force: bool = False, dry_run: bool = False) -> Recovery | None:
    """Finish what a killed (or interrupted and then killed) deploy or revert left in ``root``; the caller holds
    the app's lock. None when there was nothing to finish. ``dry_run`` says what it would do, writing nothing."""
    if not root.is_dir():
        return None
    if not dry_run:
        sweep_staging(root)
    done = [_recover_one(root, *found, force, dry_run) for found in recorded_versions(root, UNFINISHED)]
    if not done:
        return None
    if len(done) == 1:
        return done[0]
    return Recovery(done[-1].action, done[-1].backup, [p for r in done for p in r.restored],
                    [p for r in done for p in r.removed], "; ".join(r.message for r in done))
