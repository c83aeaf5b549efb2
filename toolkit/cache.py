"""What ftk's cache (``$FTK_CACHE_DIR``, else ``~/.cache/ftk``) holds, and cleaning it (``ftk cache``).

Each kind is one folder under the cache root; everything in it is made again on demand, so removing it costs only
time (MTCNN on the photos again, a runtime venv downloaded again). Two folders are never touched by a plain clean:
``state/`` (deploy journals and locks, when ``$FTK_CACHE_DIR`` is set) is never touched at all, and
``benchmark_model/`` holds binaries the user placed there (ftk cannot fetch them): removed only when named. Other
folders (someone else's, a test's) are listed and left alone.

Cleaning removes whole entries of a kind folder (a file, or a folder such as one runtime venv), never part of one,
and only inside the cache root: a kind folder that is a symbolic link, or that resolves outside the root, is refused;
a link inside a kind folder is removed as a link (its target is not touched).
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.constants import cache_root
from toolkit.errors import InputError
from toolkit.wording import did_you_mean

# kind -> what it holds (and which command makes it)
KINDS: dict[str, str] = {
    "detections": "MTCNN face boxes per photo (prepare, evaluate, compare, match, export --faces)",
    "crops": "face crops of fixed image sets, e.g. a pairs file's photos (evaluate)",
    "embeddings": "embeddings of those crops, per model file (evaluate)",
    "kotlin": "compiled jars of the generated Kotlin preprocessor (evaluate --simulate-app after, deploy)",
    "runtimes": "TensorFlow Lite runtimes in their own venvs (deploy --verify-runtime)",
    "benchmark_model": "benchmark_model binaries you placed for ftk bench --device adb (cleaned only when named)",
}
DEFAULT_CLEAN = ("detections", "crops", "embeddings", "kotlin", "runtimes")
NEVER = {"state": "deploy journals and locks"}
DAY_S = 86400.0


@dataclass
class KindUsage:
    kind: str
    path: str
    entries: int = 0  # top-level files or folders (the unit clean removes)
    files: int = 0
    bytes: int = 0
    oldest: float | None = None  # mtime of the least recently written entry (its newest file)
    newest: float | None = None
    note: str = ""


@dataclass
class CacheUsage:
    root: str
    kinds: list[KindUsage] = field(default_factory=list)
    other: list[KindUsage] = field(default_factory=list)  # folders that are not ftk's kinds: left alone

    @property
    def total_bytes(self) -> int:
        return sum(k.bytes for k in self.kinds + self.other)


@dataclass
class CleanResult:
    root: str
    dry_run: bool
    removed: list[str] = field(default_factory=list)  # paths relative to the root
    removed_bytes: int = 0
    kept_newer: int = 0  # entries younger than --older-than
    errors: list[str] = field(default_factory=list)


def _entry_size(path: Path) -> tuple[int, int, float]:
    """(files, bytes, newest mtime) of a file or a folder tree, links not followed (a link counts as itself). A
    folder's age is its newest file's (folder mtimes move when anything is added, e.g. a lock file)."""
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        return 1, info.st_size, info.st_mtime
    files, total, newest = 0, 0, 0.0
    for folder, dirs, names in os.walk(path):  # os.walk does not follow links to folders by default
        for name in names + [d for d in dirs if (Path(folder) / d).is_symlink()]:
            try:
                st = (Path(folder) / name).lstat()
            except OSError:
                continue
            files, total, newest = files + 1, total + st.st_size, max(newest, st.st_mtime)
    return files, total, newest if files else info.st_mtime


def _usage_of(kind: str, folder: Path, note: str = "") -> KindUsage:
    usage = KindUsage(kind, str(folder), note=note)
    if folder.is_symlink() or not folder.is_dir():
        return usage
    for entry in folder.iterdir():
        files, size, newest = _entry_size(entry)
        usage.entries += 1
        usage.files += files
        usage.bytes += size
        usage.oldest = newest if usage.oldest is None else min(usage.oldest, newest)
        usage.newest = newest if usage.newest is None else max(usage.newest, newest)
    return usage


def cache_usage(root: str | Path | None = None) -> CacheUsage:
    """Entries, files and bytes per kind (every kind listed, empty ones too), and the folders that are not ftk's."""
    root = Path(root) if root is not None else cache_root()
    usage = CacheUsage(str(root))
    for kind, what in KINDS.items():
        usage.kinds.append(_usage_of(kind, root / kind, what))
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            if entry.name not in KINDS and entry.name not in NEVER:
                files, size, newest = _entry_size(entry)
                usage.other.append(KindUsage(entry.name, str(entry), 1, files, size, newest, newest,
                                             "not one of ftk's kinds: left alone"))
    return usage


def _checked_kind_folder(root: Path, kind: str) -> Path | None:
    """The kind's folder when it is a real folder inside the root; None when absent; InputError when it leads out."""
    folder = root / kind
    if not os.path.lexists(folder):
        return None
    if folder.is_symlink():
        raise InputError(f"refusing to clean {folder}: it is a symbolic link (to {os.readlink(folder)})",
                         hint="remove the link yourself if the cache should not follow it")
    real_root, real = root.resolve(), folder.resolve()
    if not real.is_relative_to(real_root) or not real.is_dir():
        raise InputError(f"refusing to clean {folder}: it is not a folder inside the cache root {real_root}")
    return folder


def clean_cache(kinds: tuple[str, ...] = (), older_than_days: float | None = None, dry_run: bool = False,
                root: str | Path | None = None) -> CleanResult:
    """Remove the entries of ``kinds`` (default: every kind ftk can make again) whose newest file is older than
    ``older_than_days`` (default: all). ``dry_run`` lists what would go and removes nothing."""
    root = Path(root) if root is not None else cache_root()
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InputError(f"unknown cache kind {unknown[0]!r}",
                         hint=did_you_mean(unknown[0], KINDS, f"kinds: {', '.join(KINDS)}"))
    if older_than_days is not None and older_than_days < 0:
        raise InputError(f"--older-than must be >= 0 days, got {older_than_days:g}")
    result = CleanResult(str(root), dry_run)
    cutoff = None if older_than_days is None else time.time() - older_than_days * DAY_S
    folders = [(kind, _checked_kind_folder(root, kind)) for kind in (kinds or DEFAULT_CLEAN)]  # all checked first
    for kind, folder in folders:
        if folder is None:
            continue
        for entry in sorted(folder.iterdir()):
            _, size, newest = _entry_size(entry)
            if cutoff is not None and newest >= cutoff:
                result.kept_newer += 1
                continue
            if not dry_run:
                try:
                    _remove(entry)
                except OSError as exc:
                    result.errors.append(f"{entry}: {exc.strerror or exc}")
                    continue
            result.removed.append(entry.relative_to(root).as_posix())
            result.removed_bytes += size
    return result


def _remove(entry: Path) -> None:
    """A file or a link: unlink (a link's target stays); a folder: rmtree, which does not follow links inside it."""
    if entry.is_symlink() or not entry.is_dir():
        entry.unlink()
    else:
        shutil.rmtree(entry)
