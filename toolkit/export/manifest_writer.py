"""The export's manifest: one entry per artifact (hash, size, ops, timings), the source checkpoint and the tool
versions; paths relative to the export folder where they can be."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.checkpoint import LoadedCheckpoint
from toolkit.embedders import load_interpreter
from toolkit.errors import ModelFileError
from toolkit.export.convert import inspect_artifact
from toolkit.export.results import ArtifactResult
from toolkit.io import sha256_file
from toolkit.manifest import FORMAT_VERSION, contract_document
from toolkit.spec import ModelSpec
from toolkit.tflite.metadata import CONTRACT_METADATA_NAME, read_contract, write_contract
from toolkit.versions import tool_versions

EXPORT_FORMAT = "ftk.export/1"


def _artifact(precision: str, final: Path, tmp: Path, seconds: float, peak: int) -> ArtifactResult:
    _make_readable(tmp)
    info: dict[str, Any] = {"precision": precision}
    size = tmp.stat().st_size
    digest = sha256_file(tmp)
    info.update(inspect_artifact(tmp))
    info.update({"sha256": digest, "size_bytes": size, "export_seconds": round(seconds, 2),
                 "export_peak_rss_mib": round(peak / 2**20, 1)})
    return ArtifactResult(precision, final, size, digest, seconds, peak, info)


def _make_readable(path: Path) -> None:
    """Temp files are created 0600; a model others copy into an app gets the usual umask-derived mode."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def _array_sha256(arr: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def build_manifest(loaded: "LoadedCheckpoint", spec: ModelSpec, artifacts: dict[str, ArtifactResult],
                   export_info: dict[str, Any] | None = None, out_dir: Path | None = None) -> dict:
    """The export's manifest: ``spec`` at the top level (the embedders read exactly that key). The source
    checkpoint's path is relative to ``out_dir`` (the manifest's folder), so a moved run folder still names it."""
    meta = loaded.meta
    manifest = {
        "format": EXPORT_FORMAT,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "spec": spec.to_dict(),
        "embedding_dim": spec.embedding_dim,
        "input": {"shape": [1, spec.input_size, spec.input_size, 3], "dtype": "float32", "layout": "NHWC",
                  "channel_order": spec.channel_order, "value_range": list(spec.value_range),
                  "normalization": "in-graph: (x - mean) / std"},
        "output": {"shape": [1, spec.embedding_dim], "dtype": "float32", "l2_normalized": spec.l2_normalized},
        "source_checkpoint": {
            "path": _relative_to(loaded.path, out_dir),
            "sha256": loaded.sha256,
            "backbone": meta.spec.backbone,
            "trained_input_size": meta.spec.input_size,
            "num_classes": meta.num_classes,
            "weights_source": meta.weights_source,
            "epoch": meta.epoch,
            "config_hash": meta.config_hash,
        },
        "tools": tool_versions(),
        "artifacts": {art.path.name: art.info for art in artifacts.values()},
    }
    if export_info is not None:
        manifest["export"] = export_info
    return manifest


def _relative_to(path: Path | str, folder: Path | None) -> str:
    if folder is None:
        return str(path)
    return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()


def _beside_or_absolute(path: Path | str, out_dir: Path) -> str:
    """Relative to ``out_dir`` when ``path`` lies in the folder that holds it (a run's prepare/faces.csv beside its
    export/: a moved run folder still names it), else absolute (data elsewhere on the machine)."""
    resolved, parent = Path(path).resolve(), Path(out_dir).resolve().parent
    return _relative_to(resolved, out_dir) if resolved.is_relative_to(parent) else str(resolved)


def finalize_export(manifest: dict[str, Any], artifacts: dict[str, ArtifactResult],
                    written: dict[str, Path]) -> None:
    """Called by ``ftk export`` once the manifest is built and before it is written.

    Stamps ``format_version`` into ``manifest``; embeds each artifact's contract into its file (``written``:
    precision -> the path the file is at now, e.g. its temp name); checks the file still loads in LiteRT and reads
    its contract back; then records the final sha256 and size in the artifact (and so in the manifest entry).
    """
    items = list(manifest.items())
    manifest.clear()
    manifest.update({"format_version": FORMAT_VERSION, **{k: v for k, v in items if k != "format_version"}})
    for precision, art in artifacts.items():
        path = Path(written[precision])
        document = contract_document(manifest, art.info)
        write_contract(path, document)
        load_interpreter(path, num_threads=1)
        if read_contract(path) != document:
            raise ModelFileError(f"the contract embedded in {art.path.name} does not read back as written")
        art.sha256 = sha256_file(path)
        art.size_bytes = path.stat().st_size
        art.info["sha256"] = art.sha256
        art.info["size_bytes"] = art.size_bytes
        art.info["embedded_contract"] = {"metadata": CONTRACT_METADATA_NAME, "format_version": FORMAT_VERSION}
