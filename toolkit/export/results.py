"""What an export returns: :class:`ExportResult` with one :class:`ArtifactResult` per precision, and
:class:`ExportFailed`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import ToolkitError
from toolkit.spec import ModelSpec


class ExportFailed(ToolkitError):
    """The converter or quantiser failed on a model that loaded fine (not a user-input problem)."""


@dataclass
class ArtifactResult:
    precision: str  # "float32" | "int8"
    path: Path
    size_bytes: int
    sha256: str
    seconds: float  # conversion (and for int8: prepare + calibrate + convert) wall time
    peak_rss_bytes: int  # peak resident memory of this process while this artifact was produced (sampled)
    info: dict[str, Any] = field(default_factory=dict)  # the manifest entry


@dataclass
class ExportResult:
    out_dir: Path
    manifest_path: Path
    spec: ModelSpec
    artifacts: dict[str, ArtifactResult]  # by precision
    manifest: dict[str, Any]
    calibration_faces: int = 0
    folded_blocks: int = 0
    total_seconds: float = 0.0
    process_peak_rss_bytes: int = 0
    removed_stale: list[str] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)  # load, crops, fold, calibrate, convert, check (s)

    def summary(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "manifest": str(self.manifest_path),
            "artifacts": {
                p: {"path": str(a.path), "size_bytes": a.size_bytes, "seconds": round(a.seconds, 2),
                    "peak_rss_mib": round(a.peak_rss_bytes / 2**20, 1), "sha256": a.sha256,
                    "min_runtime": a.info.get("min_runtime")}
                for p, a in self.artifacts.items()
            },
            "calibration_faces": self.calibration_faces,
            "folded_blocks": self.folded_blocks,
            "total_seconds": round(self.total_seconds, 2),
            "stages_seconds": {k: round(v, 2) for k, v in self.stages.items()},
        }
