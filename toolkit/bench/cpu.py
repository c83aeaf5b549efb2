"""What decides int8 speed on a CPU: its model and its int8 instructions, read from ``/proc/cpuinfo``.

XNNPACK's int8 kernels beat its float32 ones where the CPU has an int8 dot-product instruction: AVX-512 VNNI, AVX-VNNI
or AMX on x86, dotprod (``asimddp``) or i8mm on ARM. With AVX2 alone they run at about the float32 rate. So an int8
latency means little without the CPU beside it: ``ftk bench`` records these for the host and, over adb, for each
device (``/proc/cpuinfo`` there), in bench.json and in its printed header.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The x86 and ARM features that decide int8 speed, in /proc/cpuinfo's own spelling ("flags" on x86, "Features" on
# ARM); the dot-product ones are named for people in DOT_PRODUCT.
X86_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8", "amx_tile", "avx512f", "avx2")
ARM_FEATURES = ("asimddp", "i8mm")
DOT_PRODUCT = {"avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8", "asimddp": "dotprod",
               "i8mm": "i8mm"}
# The /proc/cpuinfo lines that matter here (also what the adb facts script sends back from a device).
CPUINFO_KEYS = ("model name", "hardware", "features", "flags", "cpu implementer", "cpu part")


@dataclass
class CpuInfo:
    model: str
    arch: str  # "x86", "arm" or the machine name when neither flags nor Features say
    features: dict[str, bool] = field(default_factory=dict)  # each int8-deciding feature: on every core?

    @property
    def int8_dot_product(self) -> list[str]:
        return [DOT_PRODUCT[name] for name, present in self.features.items() if present and name in DOT_PRODUCT]

    def line(self) -> str:
        """One line for tables and reports: the model, the int8 dot-product instructions, each feature yes/no."""
        dot = ", ".join(self.int8_dot_product) or "none"
        flags = ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in self.features.items())
        return f"{self.model} ({self.arch}); int8 dot product: {dot}" + (f"; {flags}" if flags else "")

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "arch": self.arch, "features": dict(self.features),
                "int8_dot_product": self.int8_dot_product, "line": self.line()}


def parse_cpuinfo(text: str, fallback_model: str = "") -> CpuInfo:
    """The model and the int8-deciding features of ``/proc/cpuinfo`` text. A feature counts only when every core
    lists it (big.LITTLE phones can differ between clusters)."""
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values.setdefault(key.strip().lower(), []).append(value.strip())
    flag_lines = values.get("flags") or values.get("features") or []
    per_core = [set(v.split()) for v in flag_lines]
    on_every_core = set.intersection(*per_core) if per_core else set()
    arch = "x86" if "flags" in values else "arm" if "features" in values else platform.machine() or "unknown"
    names = X86_FEATURES if arch == "x86" else ARM_FEATURES if arch == "arm" else ()
    return CpuInfo(model=_model(values) or fallback_model or "unknown CPU", arch=arch,
                   features={name: name in on_every_core for name in names})


def _model(values: dict[str, list[str]]) -> str:
    for key in ("model name", "hardware"):
        if values.get(key):
            return values[key][0]
    if values.get("cpu implementer") and values.get("cpu part"):  # ARM without a name: the core type's ids
        parts = ", ".join(sorted(set(values["cpu part"])))
        return f"ARM implementer {values['cpu implementer'][0]} part {parts}"
    return ""


def host_cpu(cpuinfo: str | Path = "/proc/cpuinfo") -> CpuInfo:
    """This machine's CPU; without /proc/cpuinfo (not Linux) the model is what ``platform`` says, features unknown."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    return parse_cpuinfo(text, fallback_model=platform.processor() or platform.machine())
