"""Small helpers for the words ftk prints: counts with the right plural, "did you mean" for typos (stdlib only)."""

from __future__ import annotations

import difflib
from typing import Iterable


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``"1 epoch"``, ``"3 epochs"``, ``"2 identities"`` (with ``plural_form`` where adding "s" is wrong)."""
    return f"{n} {singular if n == 1 else plural_form or singular + 's'}"


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name a typo most likely meant (difflib, ratio >= 0.6), or None."""
    close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, known: Iterable[str], otherwise: str = "") -> str:
    """``"did you mean 'x'?"`` for the closest known name, else ``otherwise`` (e.g. the list of choices)."""
    match = closest(name, known)
    return f"did you mean {match!r}?" if match else otherwise


def human_bytes(n: int) -> str:
    """Binary units, as ftk prints every size: ``512 B``, ``64.0 KiB``, ``3.9 MiB``, ``1.70 GiB``."""
    if n < 1024:
        return f"{n} B"
    for unit, scale in (("KiB", 2**10), ("MiB", 2**20), ("GiB", 2**30)):
        if n < 1024 * scale or unit == "GiB":
            return f"{n / scale:.2f} {unit}" if unit == "GiB" else f"{n / scale:.1f} {unit}"
    return f"{n} B"  # unreachable
