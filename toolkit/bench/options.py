"""The bench's option values, parsed: ``--threads`` and ``--cpus`` (one parser for the host and adb benches)."""

from __future__ import annotations

import re
from typing import Sequence

from toolkit.constants import MAX_THREADS
from toolkit.errors import InputError

# The CPUs a --cpus mask may name (taskset's limit on Linux builds without a larger CONFIG_NR_CPUS).
MAX_CPUS = 1024


def parse_threads(text: str | Sequence[int]) -> list[int]:
    if not isinstance(text, str):
        values = [int(v) for v in text]
    else:
        try:
            values = [int(v) for v in text.replace(" ", "").split(",") if v]
        except ValueError:
            values = []
    if not values or min(values) < 1 or max(values) > MAX_THREADS:
        raise InputError(f"--threads must be integers in 1..{MAX_THREADS}, got {str(text)[:80]!r}",
                         hint="e.g. --threads 1 --threads 2 (or the old 1,2)")
    return list(dict.fromkeys(values))


_CPU_LIST = re.compile(r"\d{1,4}(-\d{1,4})?(,\d{1,4}(-\d{1,4})?)*")
_CPU_MASK = re.compile(r"(0x)?[0-9a-f]{1,%d}" % (MAX_CPUS // 4))


def parse_cpus(text: str | None) -> str | None:
    """--cpus as taskset's hex mask (None: the harness picks the fastest cores). Given as a hex mask (``f0``,
    ``0xf0``) or, with ``,`` or ``-``, as a CPU list (``4-7``, ``0,2``); a mask naming no CPU, or CPUs past
    ``MAX_CPUS``, is refused (each device also checks it against its own CPU count)."""
    if text is None:
        return None
    value = text.strip().lower()
    if "," in value or "-" in value:
        mask = _cpu_list_mask(value) if _CPU_LIST.fullmatch(value) else 0
    else:
        mask = int(value, 16) if _CPU_MASK.fullmatch(value) else 0
    if not 0 < mask < 1 << MAX_CPUS:
        raise InputError(f"--cpus {text[:80]!r} names no CPU this ftk can pin to",
                         hint=f"a hex mask such as f0 (CPUs 4-7), or a list such as 4-7 or 0,2; CPUs 0..{MAX_CPUS - 1}")
    return format(mask, "x")


def _cpu_list_mask(text: str) -> int:
    """``4-7,9`` -> the mask of those CPUs; 0 for a backwards range."""
    mask = 0
    for part in text.split(","):
        first, _, last = part.partition("-")
        low, high = int(first), int(last or first)
        if high < low:
            return 0
        mask |= ((1 << (high + 1)) - 1) ^ ((1 << low) - 1)
    return mask
