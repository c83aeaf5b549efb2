"""All-or-nothing changes to an app checkout, with a backup set so ``ftk deploy --revert`` can undo them.

Order of work: every change is computed in memory first; then a pre-flight check (targets writable, not
read-only, no symbolic link leading outside the app); then the originals are copied to
``<app>/.ftk-deploy/backup-<timestamp>/`` with ``journal.json`` (which also lists the folders the deploy creates),
and the journal's sha256 is recorded outside the checkout (see ``state_home``); then each new content goes to a
uniquely named temp file beside its target and is renamed over it. If anything fails after the first rename, the
files already replaced are restored from the backup and the folders created are removed, so the app ends exactly
as it was. A revert acts only on a journal recorded that way, and only on paths inside the app.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import InputError, ToolkitError
from toolkit.io import is_relative_inside, state_home, write_json_atomic

log = logging.getLogger(__name__)

STATE_DIR = ".ftk-deploy"
JOURNAL = "journal.json"
JOURNAL_FORMAT = 2  # 2: created_dirs, and a digest of every journal kept outside the checkout


@dataclass
class FileChange:
    path: Path  # absolute target
    new: bytes  # the content it should have
    old: bytes | None  # the content it has now (None: it does not exist yet)
    is_text: bool = True

    @property
    def changed(self) -> bool:
        return self.old != self.new


def _sha(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


def text_change(path: Path, new_text: str) -> FileChange:
    """``new_text`` (read with Python's newline translation) written back with the file's own line endings."""
    old = path.read_bytes() if path.exists() else None
    if old is not None and b"\r\n" in old and "\r" not in new_text:
        new_text = new_text.replace("\n", "\r\n")
    return FileChange(path, new_text.encode("utf-8"), old)


def binary_change(path: Path, new: bytes) -> FileChange:
    return FileChange(path, new, path.read_bytes() if path.exists() else None, is_text=False)


def unified_diff(changes: list[FileChange], root: Path) -> str:
    parts = []
    for change in changes:
        if not change.changed:
            continue
        rel = change.path.relative_to(root)
        if not change.is_text:
            before = "absent" if change.old is None else f"{len(change.old)} bytes, sha256 {_sha(change.old)[:12]}"
            parts.append(f"Binary file {rel}: {before} -> {len(change.new)} bytes, sha256 {_sha(change.new)[:12]}\n")
            continue
        old_lines = change.old.decode("utf-8").splitlines(keepends=True) if change.old is not None else []
        new_lines = change.new.decode("utf-8").splitlines(keepends=True)
        parts.append("".join(difflib.unified_diff(old_lines, new_lines, f"a/{rel}", f"b/{rel}")))
    return "".join(parts)


def git_dirty_files(root: Path, paths: list[Path]) -> list[str]:
    """Which of ``paths`` have uncommitted changes in git (empty when git or the repository is absent)."""
    git = shutil.which("git")
    if git is None or not paths:
        return []
    try:
        top = subprocess.run([git, "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                             timeout=30)
        if top.returncode != 0:
            return []
        existing = [str(p) for p in paths if p.exists()]
        if not existing:
            return []
        status = subprocess.run([git, "-C", str(root), "status", "--porcelain", "--", *existing],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if status.returncode != 0:
        return []
    return [line[3:] for line in status.stdout.splitlines() if line[:2].strip() and not line.startswith("??")]


# ----------------------------------------------------------------------------------------------------------------
# paths and files: whatever ftk writes, replaces or deletes stays inside the app root
# ----------------------------------------------------------------------------------------------------------------
def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _state_dir_problem(root: Path) -> str | None:
    state = root / STATE_DIR
    if state.is_symlink() or (state.exists() and not state.is_dir()):
        return f"{STATE_DIR} exists and is not a folder (ftk deploy keeps its backups there: move it away)"
    return None


def _target_problem(path: Path, root: Path) -> str | None:
    rel = _rel(path, root)
    if path.exists():
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            return f"{rel} is not a regular file"
        if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            # Respect write protection even when running as root (root's access() would say yes).
            return f"{rel} is read-only"
    existing_parent = path.parent
    while not existing_parent.exists():
        existing_parent = existing_parent.parent
    writable_bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH  # a protected folder stays protected for root too
    if not existing_parent.is_dir() or not os.access(existing_parent, os.W_OK | os.X_OK) \
            or not existing_parent.stat().st_mode & writable_bits:
        return f"{_rel(existing_parent, root) if existing_parent != root else '.'} is not writable"
    return None


def _preflight(changes: list[FileChange], root: Path) -> list[FileChange]:
    """Check every target before anything is written; return the changes at their real (link-free) paths.

    A target, or a folder on its way (``assets/``), that is a symbolic link leading outside the app is refused; a
    link inside the app is followed, so the file it points to is the one changed (and journaled)."""
    problems = [p for p in [_state_dir_problem(root)] if p]
    resolved = []
    for change in changes:
        real = change.path.resolve()
        if not real.is_relative_to(root):
            problems.append(f"{_rel(change.path, root)} leads outside the app (a symbolic link to {real})")
        elif real.is_relative_to(root / STATE_DIR):
            problems.append(f"{_rel(change.path, root)} is inside {STATE_DIR}/")
        elif problem := _target_problem(real, root):
            problems.append(problem)
        else:
            resolved.append(FileChange(real, change.new, change.old, change.is_text))
    if problems:
        raise InputError("cannot change the app: " + "; ".join(problems) + "; nothing was changed",
                         hint="make those files writable (chmod u+w), replace links that lead outside the app by "
                              "the files themselves, and run again")
    return resolved


def _create_exclusive(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write a new file: never an existing one, never through a symbolic link (O_EXCL | O_NOFOLLOW)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _write_temp(target: Path, data: bytes) -> Path:
    """A temp file beside ``target`` under a unique, unguessable name (a planted link of a fixed name is ignored)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.ftk-tmp")
    _create_exclusive(tmp, data)
    if target.exists():
        os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
    return tmp


def _write_file(path: Path, data: bytes) -> None:
    os.replace(_write_temp(path, data), path)


def _read_nofollow(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def _missing_dirs(changes: list[FileChange], root: Path) -> list[Path]:
    """The folders that writing ``changes`` creates, outermost first (only these are removed on undo)."""
    missing: list[Path] = []
    for change in changes:
        chain, parent = [], change.path.parent
        while parent != root and not os.path.lexists(parent):
            chain.append(parent)
            parent = parent.parent
        missing += [d for d in reversed(chain) if d not in missing]
    return missing


def _remove_dirs(dirs: list[Path]) -> None:
    for folder in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty (someone put a file there) or already gone: keep it
            folder.rmdir()


def _failure_message(exc: OSError, root: Path) -> str:
    where = _rel(Path(exc.filename), root) if exc.filename else "?"
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device of {root} (at {where})"
    return f"changing the app failed at {where}: {exc.strerror}"


def _replace_all(changes: list[FileChange], root: Path) -> None:
    """Temp files first, then renames; on failure restore what was already replaced and re-raise."""
    created = _missing_dirs(changes, root)
    temps: dict[Path, Path] = {}
    replaced: list[FileChange] = []
    try:
        for change in changes:
            temps[change.path] = _write_temp(change.path, change.new)
        for change in changes:
            os.replace(temps[change.path], change.path)
            del temps[change.path]  # only once renamed: a failed rename leaves its temp to be cleaned up
            replaced.append(change)
    except BaseException as exc:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        failures = _restore(replaced, root)
        _remove_dirs(created)
        if failures:
            raise ToolkitError("deploy failed AND rolling back failed for " + "; ".join(failures),
                               hint=f"restore those files from {root / STATE_DIR}") from exc
        if isinstance(exc, OSError):
            raise InputError(_failure_message(exc, root) + "; every file was restored, nothing in the app changed",
                             hint="fix that (permissions, free space) and run again") from None
        raise


def _restore(replaced: list[FileChange], root: Path) -> list[str]:
    failures = []
    for change in reversed(replaced):
        try:
            if change.old is None:
                change.path.unlink(missing_ok=True)
            else:
                _write_file(change.path, change.old)
        except OSError as restore_exc:  # pragma: no cover - reported, never silent
            failures.append(f"{_rel(change.path, root)}: {restore_exc}")
    return failures


# ----------------------------------------------------------------------------------------------------------------
# the journal and its digest outside the checkout
# ----------------------------------------------------------------------------------------------------------------
# Threat model: the app checkout may come from someone else (a clone, a zip), so everything inside it, the journal,
# the backups and any digest file beside them, can be forged: a plain sha256 stored in the checkout proves
# nothing, since whoever edits the journal recomputes it. What they cannot write is this user's own state folder
# (``state_home()``, outside the checkout). Each journal ftk deploy writes is recorded there by the sha256 of its
# exact bytes, bound to the app's real path and the backup folder's name; revert refuses a journal that is not
# recorded, so a shipped or edited journal is never acted on. Independently of that, every path in a journal is
# resolved and must stay inside the app root (backups inside their backup folder), so even a journal that passed
# could at worst touch files inside the checkout, which its author controls anyway. Not covered: someone who can
# write this user's state folder (they own the account already), and a process racing ftk in the checkout while
# it runs (paths are checked, then used).
def _journal_bytes(journal: dict[str, Any]) -> bytes:
    return (json.dumps(journal, indent=2, default=str) + "\n").encode("utf-8")


def _index_path(data: bytes) -> Path:
    return state_home() / "deploy-journals" / f"{_sha(data)}.json"


def _record_journal(root: Path, folder: Path, data: bytes) -> None:
    try:
        write_json_atomic(_index_path(data), {"app": str(root), "backup": folder.name})
    except (InputError, OSError) as exc:
        raise InputError(f"cannot record this deploy for --revert under {_index_path(data).parent}: {exc}; nothing "
                         "was changed", hint="set FTK_STATE_DIR to a writable folder outside the app") from None


def _journal_recorded(root: Path, folder: Path, data: bytes) -> bool:
    try:
        entry = json.loads(_index_path(data).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(entry, dict) and entry.get("app") == str(root) and entry.get("backup") == folder.name


def _forget_journal(data: bytes) -> None:
    with contextlib.suppress(OSError):
        _index_path(data).unlink(missing_ok=True)


def _new_backup_dir(root: Path) -> Path:
    state = root / STATE_DIR
    state.mkdir(exist_ok=True)  # the pre-flight refused a link or a file of that name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup, suffix = state / f"backup-{stamp}", 1
    while os.path.lexists(backup):
        suffix += 1
        backup = state / f"backup-{stamp}-{suffix}"
    backup.mkdir()
    return backup


def _save_originals(changes: list[FileChange], root: Path, backup: Path) -> list[dict[str, Any]]:
    entries = []
    for index, change in enumerate(changes):
        saved = None
        if change.old is not None:
            saved = f"{index:02d}-{change.path.name}"
            _create_exclusive(backup / saved, change.old)
        entries.append({"path": str(change.path.relative_to(root)), "existed": change.old is not None,
                        "backup": saved, "sha256_before": _sha(change.old), "sha256_after": _sha(change.new)})
    return entries


def apply_changes(root: Path, changes: list[FileChange], meta: dict[str, Any]) -> Path | None:
    """Apply ``changes`` atomically (as far as the filesystem allows) and return the backup folder."""
    root = Path(root).resolve()
    changes = [c for c in changes if c.changed]
    if not changes:
        return None
    changes = _preflight(changes, root)
    created = [str(d.relative_to(root)) for d in _missing_dirs(changes, root)]
    state_existed = (root / STATE_DIR).is_dir()
    backup = _new_backup_dir(root)
    applied = None
    try:
        journal = {"format": JOURNAL_FORMAT, "created": backup.name.removeprefix("backup-"), "status": "applied",
                   "files": _save_originals(changes, root, backup), "created_dirs": created, **meta}
        applied = _journal_bytes(journal)
        _record_journal(root, backup, applied)  # outside the checkout, before anything in the app changes
        _write_file(backup / JOURNAL, _journal_bytes({**journal, "status": "pending"}))
        _replace_all(changes, root)
    except BaseException:
        if applied is not None:
            _forget_journal(applied)
        shutil.rmtree(backup, ignore_errors=True)
        if not state_existed:
            shutil.rmtree(root / STATE_DIR, ignore_errors=True)
        raise
    _write_file(backup / JOURNAL, applied)
    return backup


@dataclass
class RevertResult:
    app_dir: str
    backup: str
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    dry_run: bool = False


def _read_journal(folder: Path) -> tuple[bytes, Any] | None:
    try:
        raw = _read_nofollow(folder / JOURNAL) if not folder.is_symlink() else None
        return (raw, json.loads(raw)) if raw is not None else None
    except (OSError, ValueError):
        return None


def recorded_journals(root: Path) -> list[dict[str, Any]]:
    """The journals of this app that an ftk deploy recorded outside the checkout (a planted one is not among them)."""
    if _state_dir_problem(root) or not (root / STATE_DIR).is_dir():
        return []
    out = []
    for folder in sorted((root / STATE_DIR).glob("backup-*")):
        read = _read_journal(folder)
        if read is not None and isinstance(read[1], dict) and _journal_recorded(root, folder, read[0]):
            out.append(read[1])
    return out


def latest_backup(root: Path) -> tuple[Path, bytes, dict[str, Any]]:
    """The newest applied backup folder, its journal's exact bytes and the parsed journal."""
    state = root / STATE_DIR
    if problem := _state_dir_problem(root):
        raise InputError(f"cannot revert: {problem}")
    candidates, unreadable = [], []
    for folder in sorted(state.glob("backup-*")) if state.is_dir() else []:
        read = _read_journal(folder)
        if read is None:
            unreadable.append(folder.name)
        elif isinstance(read[1], dict) and read[1].get("status") == "applied":
            candidates.append(((folder / JOURNAL).stat().st_mtime_ns, folder.name, folder, *read))
    if not candidates:
        skipped = f" ({', '.join(unreadable)}: journal missing, a link or not JSON)" if unreadable else ""
        raise InputError(f"nothing to revert in {root}: no applied ftk deploy backup under {state}{skipped}",
                         hint="ftk deploy --revert undoes the last ftk deploy of this app")
    _, _, folder, raw, journal = max(candidates)
    return folder, raw, journal


@dataclass
class _Entry:
    rel: str
    target: Path  # resolved, inside the app root
    backup: Path | None  # inside the backup folder (None: the deploy created the file)
    sha256_before: str | None
    sha256_after: str


class _Refused(Exception):
    """A journal that is not what ftk deploy writes (turned into one InputError naming the journal)."""


_HEX64 = re.compile(r"[0-9a-f]{64}")
_ENTRY_KEYS = ("path", "existed", "backup", "sha256_before", "sha256_after")


def _inside_root(rel: Any, root: Path, what: str) -> Path:
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise _Refused(f"{what} is not a path")
    if not is_relative_inside(rel):
        raise _Refused(f"{what} {rel!r} is not a path inside the app")
    real = (root / rel).resolve()
    if not real.is_relative_to(root) or real == root or real.is_relative_to(root / STATE_DIR):
        raise _Refused(f"{what} {rel!r} leads outside the app (to {real})")
    return real


def _inside_backup(name: Any, folder: Path, what: str) -> Path:
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", "..", JOURNAL):
        raise _Refused(f"{what} {name!r} is not a file name in the backup folder")
    path = folder / name
    if path.is_symlink() or not path.is_file():
        raise _Refused(f"{what} {name!r} is missing from the backup folder or not a regular file")
    return path


def _checked_entry(entry: Any, what: str, root: Path, folder: Path) -> _Entry:
    if not isinstance(entry, dict) or any(key not in entry for key in _ENTRY_KEYS):
        raise _Refused(f"{what} must be an object with {', '.join(_ENTRY_KEYS)}")
    existed, before, after = entry["existed"], entry["sha256_before"], entry["sha256_after"]
    if not isinstance(existed, bool) or not (isinstance(after, str) and _HEX64.fullmatch(after)):
        raise _Refused(f"{what}: 'existed' must be true/false and 'sha256_after' a sha256")
    has_before = isinstance(before, str) and bool(_HEX64.fullmatch(before))
    if existed != has_before or (not existed and entry["backup"] is not None):
        raise _Refused(f"{what}: an existing file needs 'sha256_before' and 'backup', a new one neither")
    target = _inside_root(entry["path"], root, f"{what}.path")
    backup = _inside_backup(entry["backup"], folder, f"{what}.backup") if existed else None
    return _Entry(entry["path"], target, backup, before, after)


def _checked_journal(journal: dict[str, Any], root: Path, folder: Path) -> tuple[list[_Entry], list[Path]]:
    files, dirs = journal.get("files"), journal.get("created_dirs", [])
    if not isinstance(files, list) or not files:
        raise _Refused("'files' must be a non-empty list")
    if not isinstance(dirs, list):
        raise _Refused("'created_dirs' must be a list")
    entries = [_checked_entry(entry, f"files[{i}]", root, folder) for i, entry in enumerate(files)]
    return entries, [_inside_root(d, root, f"created_dirs[{i}]") for i, d in enumerate(dirs)]


def _trusted_journal(root: Path) -> tuple[Path, dict[str, Any], bytes, list[_Entry], list[Path]]:
    folder, raw, journal = latest_backup(root)
    try:
        entries, dirs = _checked_journal(journal, root, folder)
        if not _journal_recorded(root, folder, raw):
            raise _Refused(f"it is not a journal ftk deploy recorded for this app (no matching sha256 under "
                           f"{state_home() / 'deploy-journals'}): it was edited, or it came with the checkout")
    except _Refused as exc:
        raise InputError(f"refusing to revert from {_rel(folder / JOURNAL, root)}: {exc}; nothing was changed",
                         hint=f"restore the app from version control and delete {STATE_DIR}/") from None
    return folder, journal, raw, entries, dirs


def _current_bytes(path: Path, root: Path) -> bytes | None:
    if not os.path.lexists(path):
        return None
    if not path.is_file():
        raise InputError(f"cannot revert: {_rel(path, root)} is no longer a regular file", hint="move it away")
    return path.read_bytes()


def revert_changes(root: Path, force: bool = False, dry_run: bool = False) -> RevertResult:
    """Undo the most recent applied deploy: restore each file's previous content, delete files it added, and
    remove the folders it created (if still empty): the app ends byte for byte as it was."""
    root = Path(root).resolve()
    folder, journal, raw, entries, created_dirs = _trusted_journal(root)
    to_write: list[FileChange] = []
    deletions: list[FileChange] = []
    modified = []
    for entry in entries:
        current = _current_bytes(entry.target, root)
        if _sha(current) != entry.sha256_after:
            modified.append(entry.rel)
        if entry.backup is not None:
            original = _read_nofollow(entry.backup)
            if _sha(original) != entry.sha256_before:
                raise InputError(f"backup {entry.backup} is damaged (checksum mismatch)",
                                 hint="restore that file from git instead")
            to_write.append(FileChange(entry.target, original, current))
        elif current is not None:
            deletions.append(FileChange(entry.target, b"", current))
    if modified and not force:
        raise InputError("these files changed since ftk deploy wrote them: " + ", ".join(modified)
                         + "; reverting would lose those edits", hint="commit or copy your edits, then revert again")
    to_write = _preflight([c for c in to_write if c.changed], root)
    deletions = _preflight(deletions, root)
    if dry_run:  # every check above ran; nothing below writes
        return RevertResult(app_dir=str(root), backup=str(folder), restored=[_rel(c.path, root) for c in to_write],
                            removed=[_rel(c.path, root) for c in deletions], dry_run=True)
    _replace_all(to_write, root)
    for change in deletions:
        change.path.unlink()
    _remove_dirs(created_dirs)
    journal["status"] = "reverted"
    journal["reverted"] = time.strftime("%Y%m%d-%H%M%S")
    _write_file(folder / JOURNAL, _journal_bytes(journal))
    _forget_journal(raw)
    return RevertResult(app_dir=str(root), backup=str(folder),
                        restored=[_rel(c.path, root) for c in to_write],
                        removed=[_rel(c.path, root) for c in deletions])
