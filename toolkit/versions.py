"""The versions of ftk and of the libraries that shape its outputs, as exports, reference sets and pipeline reports
record them."""

from __future__ import annotations

import platform
from importlib import metadata

from toolkit import __version__


def tool_versions() -> dict[str, str | None]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "ftk": __version__,
        "python": platform.python_version(),
        "torch": version("torch"),
        "torchao": version("torchao"),
        "litert-torch": version("litert-torch"),
        "ai-edge-litert": version("ai-edge-litert"),
        "facenet-pytorch": version("facenet-pytorch"),
    }
