"""All-or-nothing changes to an app checkout, with a backup set so ``ftk deploy --revert`` can undo them.

Order of work: every change is computed in memory first; then, holding the app's lock (one ftk process per app at
a time) and after finishing whatever a killed earlier run left (:func:`toolkit.deploy.journal.recover_unfinished`),
a pre-flight check (targets writable, not read-only, no symbolic link leading outside the app, room for
``.ftk-deploy/``); then the write-ahead journal (:mod:`toolkit.deploy.journal`): originals and a ``pending``
journal durable in ``<app>/.ftk-deploy/backup-<timestamp>/``, recorded outside the checkout (see ``state_home``);
then each new content goes to the temp file the journal names beside its target and is renamed over it; then the
journal says ``applied``. If anything fails (an error, Ctrl-C) before that, every file goes back to its original
and the backup is removed; if the process is killed, the next ftk deploy or --revert does the same. A revert acts
only on a journal recorded that way, and only on paths inside the app, and is journaled the same way.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import logging
import os
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.deploy.journal import (
    JOURNAL, JOURNAL_FORMAT, STATE_DIR, Recovery, Refused, back_to_before, checked_journal, create_exclusive,
    current_bytes, dir_writable, discard_backup, finish_revert, forget, is_recorded, journal_bytes, read_journal,
    read_nofollow, record, recorded_versions, recover_unfinished, rel, remove_tree, replace_durably, sha,
    state_dir_problem, temp_name)
from toolkit.errors import InputError, ToolkitError
from toolkit.io import fsync_path, state_home
from toolkit.locks import exclusive

log = logging.getLogger(__name__)

__all__ = ["JOURNAL", "JOURNAL_FORMAT", "STATE_DIR", "FileChange", "RevertResult", "app_lock", "apply_changes",
           "binary_change", "git_dirty_files", "latest_backup", "recorded_journals", "recover_unfinished",
           "revert_changes", "text_change", "unified_diff"]


@dataclass
class FileChange:
    path: Path  # absolute target
    new: bytes  # the content it should have
    old: bytes | None  # the content it has now (None: it does not exist yet)
    is_text: bool = True

    @property
    def changed(self) -> bool:
        return self.old != self.new


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
            before = "absent" if change.old is None else f"{len(change.old)} bytes, sha256 {sha(change.old)[:12]}"
            parts.append(f"Binary file {rel}: {before} -> {len(change.new)} bytes, sha256 {sha(change.new)[:12]}\n")
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
# the pre-flight: whatever ftk writes, replaces or deletes stays inside the app root, and can be written
# ----------------------------------------------------------------------------------------------------------------
def app_lock(root: Path, required: bool = True):
    """One ftk process at a time changes (or dry-runs against) this app checkout."""
    return exclusive(root, "the app checkout", required=required)


def _state_dir_writable_problem(root: Path) -> str | None:
    """``.ftk-deploy/`` must be writable, or the app root when it has to be created there."""
    state = root / STATE_DIR
    folder = state if state.is_dir() else root
    if not dir_writable(folder):
        where = f"{STATE_DIR}/" if folder == state else f"the app folder {root}"
        return f"{where} is not writable (ftk deploy keeps its backups in {STATE_DIR}/)"
    return None


def _target_problem(path: Path, root: Path) -> str | None:
    rel_path = rel(path, root)
    if path.exists():
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            return f"{rel_path} is not a regular file"
        if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            # Respect write protection even when running as root (root's access() would say yes).
            return f"{rel_path} is read-only"
    existing_parent = path.parent
    while not existing_parent.exists():
        existing_parent = existing_parent.parent
    if not dir_writable(existing_parent):
        return f"{rel(existing_parent, root) if existing_parent != root else '.'} is not writable"
    return None


def _preflight(changes: list[FileChange], root: Path) -> list[FileChange]:
    """Check every target before anything is written; return the changes at their real (link-free) paths.

    A target, or a folder on its way (``assets/``), that is a symbolic link leading outside the app is refused; a
    link inside the app is followed, so the file it points to is the one changed (and journaled)."""
    problems = [p for p in [state_dir_problem(root) or _state_dir_writable_problem(root)] if p]
    resolved = []
    for change in changes:
        real = change.path.resolve()
        if not real.is_relative_to(root):
            problems.append(f"{rel(change.path, root)} leads outside the app (a symbolic link to {real})")
        elif real.is_relative_to(root / STATE_DIR):
            problems.append(f"{rel(change.path, root)} is inside {STATE_DIR}/")
        elif problem := _target_problem(real, root):
            problems.append(problem)
        else:
            resolved.append(FileChange(real, change.new, change.old, change.is_text))
    if problems:
        raise InputError("cannot change the app: " + "; ".join(problems) + "; nothing was changed",
                         hint="make those files writable (chmod u+w), replace links that lead outside the app by "
                              "the files themselves, and run again")
    return resolved


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


def _failure_message(exc: OSError, root: Path) -> str:
    where = rel(Path(exc.filename), root) if exc.filename else None
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on {root}" + (f" (writing {where})" if where else "")
    return f"changing the app failed at {where or root}: {exc.strerror}"


# ----------------------------------------------------------------------------------------------------------------
# apply: write ahead, install, mark applied
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class _Staging:
    """The backup folder is built under a temp name and renamed into place complete (journal included): a kill
    before that leaves only a staging folder, which the next run sweeps away."""
    backup: Path  # where the backup folder is built
    final: Path  # its name once in place: .ftk-deploy/backup-<stamp>
    move: Path  # what is renamed into place: the backup folder, or a whole new .ftk-deploy holding it
    into: Path

    @classmethod
    def create(cls, root: Path) -> "_Staging":
        state, stamp = root / STATE_DIR, time.strftime("%Y%m%d-%H%M%S")
        name, suffix = f"backup-{stamp}", 1
        while os.path.lexists(state / name):
            suffix += 1
            name = f"backup-{stamp}-{suffix}"
        new_state = not state.is_dir()
        move = root / temp_name(state) if new_state else state / temp_name(state / name)
        staging = cls(move / name, state / name, move, state) if new_state else cls(move, state / name, move,
                                                                                     state / name)
        try:
            move.mkdir()
            staging.backup.mkdir(exist_ok=True)
        except BaseException:
            with contextlib.suppress(OSError):
                remove_tree(move)
            raise
        return staging


def _save_originals(changes: list[FileChange], root: Path, backup: Path) -> list[dict[str, Any]]:
    """Each original into the backup folder (fsynced, with its permission bits); the journal's entries."""
    entries = []
    for index, change in enumerate(changes):
        saved = None
        if change.old is not None:
            saved = f"{index:02d}-{change.path.name}"
            create_exclusive(backup / saved, change.old, stat.S_IMODE(change.path.stat().st_mode))
        entries.append({"path": str(change.path.relative_to(root)), "existed": change.old is not None,
                        "backup": saved, "sha256_before": sha(change.old), "sha256_after": sha(change.new),
                        "temp": temp_name(change.path)})
    return entries


def _write_ahead(root: Path, changes: list[FileChange], meta: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Backups and the pending journal durable in place, its pending and applied versions recorded outside the
    checkout; nothing in the app's own files has changed yet. (backup folder, journal)"""
    staging = _Staging.create(root)
    journal: dict[str, Any] = {}
    try:
        journal = {**meta, "format": JOURNAL_FORMAT, "created": staging.final.name.removeprefix("backup-"),
                   "status": "pending", "files": _save_originals(changes, root, staging.backup),
                   "created_dirs": [str(d.relative_to(root)) for d in _missing_dirs(changes, root)],
                   "state_dir_created": staging.into.name == STATE_DIR}
        for status in ("pending", "applied"):
            record(root, staging.final, journal_bytes({**journal, "status": status}))
        create_exclusive(staging.backup / JOURNAL, journal_bytes(journal))
        fsync_path(staging.backup)
        if staging.move != staging.backup:
            fsync_path(staging.move)
        os.rename(staging.move, staging.into)
        fsync_path(staging.into.parent)
    except BaseException as exc:
        if journal and not os.path.lexists(staging.move):  # in place already: undone like a failed install
            _roll_back(root, staging.final, journal, exc)
        with contextlib.suppress(OSError):
            remove_tree(staging.move)
        for status in ("pending", "applied") if journal else ():
            forget(sha(journal_bytes({**journal, "status": status})))
        raise
    return staging.final, journal


def _install(root: Path, changes: list[FileChange], journal: dict[str, Any]) -> None:
    """Created folders, then every temp file (fsynced), then the renames, then the folders fsynced."""
    for folder in (root / d for d in journal["created_dirs"]):
        folder.mkdir()
        fsync_path(folder.parent)
    temps = [change.path.parent / entry["temp"] for change, entry in zip(changes, journal["files"])]
    for change, tmp in zip(changes, temps):
        mode = stat.S_IMODE(change.path.stat().st_mode) if change.old is not None else None
        create_exclusive(tmp, change.new, mode)
    for change, tmp in zip(changes, temps):
        os.replace(tmp, change.path)
    for folder in dict.fromkeys(change.path.parent for change in changes):
        fsync_path(folder)


def _roll_back(root: Path, folder: Path, journal: dict[str, Any], failure: BaseException) -> None:
    """After a failed or interrupted install: every file back, the backup removed, then ``failure`` re-raised (an
    OSError as one line). If the rollback itself is cut short, the pending journal stays for the next run."""
    try:
        entries, dirs = checked_journal(journal, root, folder)
        back_to_before(root, entries, dirs, force=False)
        discard_backup(root, folder, [sha(journal_bytes({**journal, "status": s})) for s in ("pending", "applied")],
                       journal["state_dir_created"])
    except (OSError, ToolkitError, Refused) as undo_failure:
        raise ToolkitError(f"deploy failed ({failure}) AND rolling it back failed: {undo_failure}",
                           hint=f"the journal in {folder} is kept: the next ftk deploy or ftk deploy --revert "
                                "finishes the rollback") from failure
    if isinstance(failure, OSError):
        raise InputError(_failure_message(failure, root) + "; every file was restored, nothing in the app changed",
                         hint="fix that (permissions, free space) and run again") from None
    raise failure


def apply_changes(root: Path, changes: list[FileChange], meta: dict[str, Any]) -> Path | None:
    """Apply ``changes`` all-or-nothing, crash-safe, and return the backup folder (None: nothing to change)."""
    root = Path(root).resolve()
    changes = [c for c in changes if c.changed]
    if not changes:
        return None
    with app_lock(root):
        recover_unfinished(root)
        changes = _preflight(changes, root)
        try:
            folder, journal = _write_ahead(root, changes, meta)
        except OSError as exc:
            raise InputError(_failure_message(exc, root) + "; nothing in the app changed",
                             hint="fix that (permissions, free space) and run again") from None
        try:
            _install(root, changes, journal)
            replace_durably(folder / JOURNAL, journal_bytes({**journal, "status": "applied"}))
        except BaseException as exc:
            _roll_back(root, folder, journal, exc)
        forget(sha(journal_bytes(journal)))  # the pending version: never acted on again
    return folder


# ----------------------------------------------------------------------------------------------------------------
# the journals of an app
# ----------------------------------------------------------------------------------------------------------------
def recorded_journals(root: Path) -> list[dict[str, Any]]:
    """The applied journals of this app that an ftk deploy recorded outside the checkout (a planted one is not
    among them)."""
    return [journal for _, _, journal in recorded_versions(root, ("applied",))]


def latest_backup(root: Path) -> tuple[Path, bytes, dict[str, Any]]:
    """The newest applied backup folder that ftk recorded (else the newest applied one, which the caller refuses),
    its journal's exact bytes and the parsed journal. A planted journal, however new, never hides a genuine one."""
    state = root / STATE_DIR
    if problem := state_dir_problem(root):
        raise InputError(f"cannot revert: {problem}")
    applied, recorded, unreadable = [], [], []
    for folder in sorted(state.glob("backup-*")) if state.is_dir() else []:
        read = read_journal(folder)
        if read is None:
            unreadable.append(folder.name)
        elif isinstance(read[1], dict) and read[1].get("status") == "applied":
            found = ((folder / JOURNAL).stat().st_mtime_ns, folder.name, folder, *read)
            applied.append(found)
            if is_recorded(root, folder, read[0]):
                recorded.append(found)
    if not applied:
        skipped = f" ({', '.join(unreadable)}: journal missing, a link or not JSON)" if unreadable else ""
        raise InputError(f"nothing to revert in {root}: no applied ftk deploy backup under {state}{skipped}",
                         hint="ftk deploy --revert undoes the last ftk deploy of this app")
    newest = max(recorded or applied, key=lambda found: found[:2])
    ignored = [found[1] for found in applied if found[:2] > newest[:2]]  # newer, so not recorded
    if recorded and ignored:
        log.warning("ignoring %s in %s: not journals ftk deploy recorded for this app", ", ".join(ignored), STATE_DIR)
    return newest[2], newest[3], newest[4]


def _trusted_journal(root: Path) -> tuple[Path, dict[str, Any], bytes, list[Any], list[Path]]:
    folder, raw, journal = latest_backup(root)
    try:
        entries, dirs = checked_journal(journal, root, folder)
        if not is_recorded(root, folder, raw):
            raise Refused(f"it is not a journal ftk deploy recorded for this app (no matching sha256 under "
                          f"{state_home() / 'deploy-journals'}): it was edited, or it came with the checkout")
    except Refused as exc:
        raise InputError(f"refusing to revert from {rel(folder / JOURNAL, root)}: {exc}; nothing was changed",
                         hint=f"restore the app from version control; delete {rel(folder, root)}/ (that backup "
                              f"folder only)") from None
    return folder, journal, raw, entries, dirs


# ----------------------------------------------------------------------------------------------------------------
# revert
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class RevertResult:
    app_dir: str
    backup: str
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    dry_run: bool = False
    recovery: str | None = None  # an interrupted deploy or revert this command finished instead (what it did)


def _checked_revert(root: Path, entries: list[Any], force: bool) -> tuple[list[str], list[str]]:
    """(to restore, to remove) after every check: edits since the deploy (unless ``force``), damaged backups,
    and the pre-flight of the files it writes."""
    to_write, deletions, modified = [], [], []
    for entry in entries:
        current = current_bytes(entry.target, root)
        if sha(current) != entry.sha256_after:
            modified.append(entry.rel)
        if entry.backup is not None:
            original = read_nofollow(entry.backup)
            if sha(original) != entry.sha256_before:
                raise InputError(f"backup {entry.backup} is damaged (checksum mismatch)",
                                 hint="restore that file from git instead")
            if original != current:
                to_write.append(FileChange(entry.target, original, current))
        elif current is not None:
            deletions.append(FileChange(entry.target, b"", current))
    if modified and not force:
        raise InputError("these files changed since ftk deploy wrote them: " + ", ".join(modified)
                         + "; reverting would lose those edits", hint="commit or copy your edits, then revert again")
    _preflight(to_write + deletions, root)
    return [rel(c.path, root) for c in to_write], [rel(c.path, root) for c in deletions]


def _recovered_revert(root: Path, recovery: Recovery, dry_run: bool) -> RevertResult:
    return RevertResult(app_dir=str(root), backup=recovery.backup, restored=recovery.restored,
                        removed=recovery.removed, dry_run=dry_run, recovery=recovery.message)


def revert_changes(root: Path, force: bool = False, dry_run: bool = False) -> RevertResult:
    """Undo the most recent applied deploy: restore each file's previous content, delete files it added, and
    remove the folders it created (if still empty): the app ends byte for byte as it was. If a deploy or revert
    was interrupted, finishing it (rolling the deploy back, completing the revert) is this revert."""
    root = Path(root).resolve()
    with app_lock(root, required=not dry_run):
        recovery = recover_unfinished(root, force=force, dry_run=dry_run)
        if recovery is not None:
            return _recovered_revert(root, recovery, dry_run)
        folder, journal, raw, entries, dirs = _trusted_journal(root)
        restored, removed = _checked_revert(root, entries, force)
        if dry_run:  # every check above ran; nothing below writes
            return RevertResult(app_dir=str(root), backup=str(folder), restored=restored, removed=removed,
                                dry_run=True)
        reverting = {**journal, "status": "reverting", "revert_force": force, "applied_sha256": sha(raw),
                     "files": [{**entry, "temp": temp_name(root / entry["path"])} for entry in journal["files"]]}
        reverting_raw = journal_bytes(reverting)
        record(root, folder, reverting_raw)
        replace_durably(folder / JOURNAL, reverting_raw)
        try:
            entries, dirs = checked_journal(reverting, root, folder)
            back_to_before(root, entries, dirs, force=True)  # the checks above ran: edits are the user's choice
            finish_revert(folder, reverting, reverting_raw)
        except OSError as exc:
            raise InputError(_failure_message(exc, root) + "; the revert is unfinished",
                             hint="fix that (permissions, free space) and run ftk deploy --revert again: it "
                                  "finishes the revert") from None
    return RevertResult(app_dir=str(root), backup=str(folder), restored=restored, removed=removed)
