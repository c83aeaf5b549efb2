"""LFW verification pairs: ``pairs.txt`` (View 2, 10 folds) and ``pairsDevTrain.txt`` / ``pairsDevTest.txt`` (View 1).

Format: a header line, ``N_SETS<TAB>N`` (pairs.txt: ``10 300``) or just ``N`` (the dev files: ``500``), then per set N
same-person lines ``name<TAB>i<TAB>j`` followed by N different-person lines ``name1<TAB>i<TAB>name2<TAB>j``. The image
of ``name``, ``i`` is ``name/name_%04d.jpg`` under the image folder. A file with several sets gives the fold of each
pair (the set it is in); a one-set file has no folds (:func:`toolkit.metrics.derive_folds` makes 10).

A file without a header (your own pairs, same line formats) is accepted as one set without folds.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.errors import InputError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[^/\\\x00]+$")


@dataclass(frozen=True)
class Pair:
    left: str  # image path relative to the image folder, e.g. "Abel_Pacheco/Abel_Pacheco_0001.jpg"
    right: str
    same: bool
    fold: int | None  # the set of pairs.txt this pair is in; None for a one-set file
    line: int  # 1-based line number in the pairs file, for error messages


@dataclass
class PairsFile:
    path: Path
    pairs: list[Pair]
    n_sets: int
    per_set: int | None  # same-person (and different-person) pairs per set, from the header

    @property
    def has_folds(self) -> bool:
        return self.n_sets > 1

    @property
    def same(self) -> np.ndarray:
        return np.array([p.same for p in self.pairs], dtype=bool)

    @property
    def folds(self) -> np.ndarray | None:
        return np.array([p.fold for p in self.pairs], dtype=np.int64) if self.has_folds else None

    def identities(self) -> set[str]:
        """Every person the pairs name (the folder of each image)."""
        return {path.split("/", 1)[0] for p in self.pairs for path in (p.left, p.right)}

    def image_paths(self) -> list[str]:
        """Every image the pairs use, once, in first-use order."""
        seen: dict[str, None] = {}
        for p in self.pairs:
            seen.setdefault(p.left, None)
            seen.setdefault(p.right, None)
        return list(seen)


def lfw_image_path(name: str, index: int) -> str:
    return f"{name}/{name}_{index:04d}.jpg"


def _parse_index(text: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{where}: image number must be an integer, got {text!r}") from None
    if value < 1:
        raise InputError(f"{where}: image numbers start at 1, got {value}")
    return value


def _check_name(name: str, where: str) -> str:
    if not _NAME.match(name) or name in (".", ".."):
        raise InputError(f"{where}: {name!r} is not a person name (no slashes or '..')")
    return name


def _parse_line(fields: list[str], where: str) -> tuple[str, str, bool]:
    if len(fields) == 3:
        name = _check_name(fields[0], where)
        return lfw_image_path(name, _parse_index(fields[1], where)), lfw_image_path(name, _parse_index(fields[2], where)), True
    if len(fields) == 4:
        a, b = _check_name(fields[0], where), _check_name(fields[2], where)
        return lfw_image_path(a, _parse_index(fields[1], where)), lfw_image_path(b, _parse_index(fields[3], where)), False
    raise InputError(
        f"{where}: expected 3 fields (name i j, same person) or 4 (name1 i name2 j, different people), "
        f"got {len(fields)}: {' '.join(fields)[:80]!r}"
    )


def read_pairs(path: str | Path) -> PairsFile:
    """Parse an LFW pairs file (see the module doc); a clear error names the first malformed line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"pairs file not found: {path}",
                         hint="LFW's pairs.txt / pairsDevTest.txt, e.g. ../shared/data/lfw/pairsDevTest.txt")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text pairs file") from None
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise InputError(f"pairs file {path} is empty")
    n_sets, per_set = 1, None
    first_n, first = lines[0]
    if all(f.isdigit() for f in first) and len(first) in (1, 2):
        if len(first) == 2:
            n_sets, per_set = int(first[0]), int(first[1])
        else:
            per_set = int(first[0])
        if n_sets < 1 or per_set < 1:
            raise InputError(f"{path}:{first_n}: header must be positive numbers, got {' '.join(first)!r}")
        lines = lines[1:]
    pairs: list[Pair] = []
    for i, (n, fields) in enumerate(lines):
        where = f"{path}:{n}"
        left, right, same = _parse_line(fields, where)
        fold = i // (2 * per_set) if per_set and n_sets > 1 else None
        pairs.append(Pair(left=left, right=right, same=same, fold=fold, line=n))
    if per_set is not None:
        expected = n_sets * 2 * per_set
        if len(pairs) != expected:
            raise InputError(
                f"{path}: the header promises {n_sets} set(s) of {per_set} same + {per_set} different pairs "
                f"({expected} lines) but the file has {len(pairs)} pair lines",
                hint="is the file truncated? re-download it or fix the header",
            )
        for set_index in range(n_sets):  # each set: N same-person lines, then N different-person lines
            block = pairs[set_index * 2 * per_set : (set_index + 1) * 2 * per_set]
            if sum(p.same for p in block) != per_set:
                raise InputError(f"{path}: set {set_index + 1} does not have {per_set} same-person pairs")
    if not any(p.same for p in pairs) or all(p.same for p in pairs):
        raise InputError(f"{path} needs both same-person (3-field) and different-person (4-field) lines")
    log.info("read %d pairs (%d sets) from %s", len(pairs), n_sets, path)
    return PairsFile(path=path, pairs=pairs, n_sets=n_sets, per_set=per_set)


def check_pair_images(pairs: PairsFile, image_root: str | Path) -> list[Path]:
    """The absolute image paths of all pairs, checked to exist (one error listing the missing ones)."""
    root = Path(image_root)
    if not root.is_dir():
        raise InputError(f"image folder not found: {root}", hint="--data should be the folder of Person_Name/ folders")
    rel = pairs.image_paths()
    paths = [root / r for r in rel]
    missing = [r for r, p in zip(rel, paths) if not p.is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} of {len(rel)} images named by {pairs.path.name} are missing under {root}, e.g. "
            + ", ".join(missing[:3]),
            hint="--data must be the LFW image folder (e.g. lfw-deepfunneled) the pairs file refers to",
        )
    return paths


def subset_pairs(pairs: PairsFile, limit: int | None) -> PairsFile:
    """At most ``limit`` pairs, half same / half different, spread evenly over the file (so over the folds)."""
    if limit is None or limit >= len(pairs.pairs):
        return pairs
    if limit < 2:
        raise InputError(f"--limit-pairs must be at least 2, got {limit}")
    same = [p for p in pairs.pairs if p.same]
    diff = [p for p in pairs.pairs if not p.same]
    n_same = min(len(same), limit // 2)
    n_diff = min(len(diff), limit - n_same)

    def spread(items: list[Pair], k: int) -> list[Pair]:
        idx = np.floor(np.arange(k) * len(items) / k).astype(int) if k else []
        return [items[i] for i in idx]

    chosen = spread(same, n_same) + spread(diff, n_diff)
    chosen.sort(key=lambda p: p.line)
    return PairsFile(path=pairs.path, pairs=chosen, n_sets=pairs.n_sets, per_set=None)
