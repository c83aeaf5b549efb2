"""All-or-nothing changes to an app checkout, with a backup set so ``ftk deploy --revert`` can undo them.

Order of work: every change is computed in memory first; then a pre-flight check (targets writable, not
read-only); then the originals are copied to ``<app>/.ftk-deploy/backup-<timestamp>/`` with ``journal.json``; then
each new content goes to a temp file beside its target and is renamed over it. If anything fails after the first
rename, the files already replaced are restored from the backup, so the app ends exactly as it was.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import InputError, ToolkitError

log = logging.getLogger(__name__)

STATE_DIR = ".ftk-deploy"
JOURNAL = "journal.json"


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
    return FileChange(path, new_text.encode("utf-8"), path.read_bytes() if path.exists() else None)


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


def _preflight(changes: list[FileChange], root: Path) -> None:
    problems = []
    for change in changes:
        rel = change.path.relative_to(root)
        parent = change.path.parent
        if change.path.exists():
            mode = change.path.stat().st_mode
            if not stat.S_ISREG(mode):
                problems.append(f"{rel} is not a regular file")
            elif not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
                # Respect write protection even when running as root (root's access() would say yes).
                problems.append(f"{rel} is read-only")
        existing_parent = parent
        while not existing_parent.exists():
            existing_parent = existing_parent.parent
        if not existing_parent.is_dir() or not os.access(existing_parent, os.W_OK | os.X_OK):
            problems.append(f"{existing_parent.relative_to(root) if existing_parent != root else '.'} is not writable")
    if problems:
        raise InputError("cannot change the app: " + "; ".join(problems) + "; nothing was changed",
                         hint="make those files writable (chmod u+w) and run again")


def _write_temp(target: Path, data: bytes) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.ftk-tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if target.exists():
        shutil.copymode(target, tmp)
    return tmp


def _replace_all(changes: list[FileChange], root: Path) -> None:
    """Temp files first, then renames; on failure restore what was already replaced and re-raise."""
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
        failures = []
        for change in reversed(replaced):
            try:
                if change.old is None:
                    change.path.unlink(missing_ok=True)
                else:
                    os.replace(_write_temp(change.path, change.old), change.path)
            except OSError as restore_exc:  # pragma: no cover - reported, never silent
                failures.append(f"{change.path.relative_to(root)}: {restore_exc}")
        _remove_created_dirs(changes, root)
        if failures:
            raise ToolkitError("deploy failed AND rolling back failed for " + "; ".join(failures),
                               hint=f"restore those files from {root / STATE_DIR}") from exc
        if isinstance(exc, OSError):
            where = Path(exc.filename).relative_to(root) if exc.filename and Path(exc.filename).is_relative_to(root) \
                else exc.filename
            raise InputError(f"changing the app failed at {where}: {exc.strerror}; every file was restored, "
                             "nothing in the app changed", hint="fix the permission problem and run again") from None
        raise


def _remove_created_dirs(changes: list[FileChange], root: Path) -> None:
    for change in changes:
        if change.old is None:
            parent = change.path.parent
            while parent != root and parent.exists() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


def apply_changes(root: Path, changes: list[FileChange], meta: dict[str, Any]) -> Path | None:
    """Apply ``changes`` atomically (as far as the filesystem allows) and return the backup folder."""
    changes = [c for c in changes if c.changed]
    if not changes:
        return None
    _preflight(changes, root)
    state = root / STATE_DIR
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = state / f"backup-{stamp}"
    suffix = 1
    while backup.exists():
        suffix += 1
        backup = state / f"backup-{stamp}-{suffix}"
    backup.mkdir(parents=True)
    entries = []
    try:
        for index, change in enumerate(changes):
            saved = None
            if change.old is not None:
                saved = f"{index:02d}-{change.path.name}"
                (backup / saved).write_bytes(change.old)
            entries.append({"path": str(change.path.relative_to(root)), "existed": change.old is not None,
                            "backup": saved, "sha256_before": _sha(change.old), "sha256_after": _sha(change.new)})
        journal = {"created": stamp, "status": "pending", "files": entries, **meta}
        _write_json(backup / JOURNAL, journal)
        _replace_all(changes, root)
    except BaseException:
        shutil.rmtree(backup, ignore_errors=True)
        if state.exists() and not any(state.iterdir()):
            state.rmdir()
        raise
    journal["status"] = "applied"
    _write_json(backup / JOURNAL, journal)
    return backup


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class RevertResult:
    app_dir: str
    backup: str
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def latest_backup(root: Path) -> tuple[Path, dict[str, Any]]:
    state = root / STATE_DIR
    candidates = []
    for folder in sorted(state.glob("backup-*")) if state.is_dir() else []:
        journal_path = folder / JOURNAL
        if not journal_path.is_file():
            continue
        try:
            journal = json.loads(journal_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if journal.get("status") == "applied":
            candidates.append((journal_path.stat().st_mtime_ns, folder.name, folder, journal))
    if not candidates:
        raise InputError(f"nothing to revert in {root}: no applied ftk deploy backup under {state}",
                         hint="ftk deploy --revert undoes the last ftk deploy of this app")
    _, _, folder, journal = max(candidates)
    return folder, journal


def revert_changes(root: Path, force: bool = False) -> RevertResult:
    """Undo the most recent applied deploy: restore each file's previous content, delete files it added."""
    folder, journal = latest_backup(root)
    to_write: list[FileChange] = []
    deletions: list[FileChange] = []
    modified = []
    for entry in journal["files"]:
        target = root / entry["path"]
        current = target.read_bytes() if target.exists() else None
        if _sha(current) != entry["sha256_after"]:
            modified.append(entry["path"])
        if entry["existed"]:
            original = (folder / entry["backup"]).read_bytes()
            if _sha(original) != entry["sha256_before"]:
                raise InputError(f"backup {folder / entry['backup']} is damaged (checksum mismatch)",
                                 hint="restore that file from git instead")
            to_write.append(FileChange(target, original, current))
        elif current is not None:
            deletions.append(FileChange(target, b"", current))
    if modified and not force:
        raise InputError("these files changed since ftk deploy wrote them: " + ", ".join(modified)
                         + "; reverting would lose those edits", hint="commit or copy your edits, then revert again")
    to_write = [c for c in to_write if c.changed]
    _preflight(to_write + deletions, root)
    _replace_all(to_write, root)
    for change in deletions:
        change.path.unlink()
    _remove_created_dirs([FileChange(c.path, c.new, None) for c in deletions], root)
    journal["status"] = "reverted"
    journal["reverted"] = time.strftime("%Y%m%d-%H%M%S")
    _write_json(folder / JOURNAL, journal)
    return RevertResult(app_dir=str(root), backup=str(folder),
                        restored=[str(c.path.relative_to(root)) for c in to_write],
                        removed=[str(c.path.relative_to(root)) for c in deletions])
