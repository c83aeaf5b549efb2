"""Reading exports back (``ftk info``, parity): what a checkpoint, a .tflite or an export folder contains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.checkpoint import read_checkpoint_meta
from toolkit.constants import MANIFEST_NAME
from toolkit.embedders import load_interpreter, read_manifest_for
from toolkit.errors import InputError
from toolkit.io import read_json, sha256_file
from toolkit.tflite.inspect import inspect_tflite


def artifact_entry(tflite_path: str | Path) -> dict[str, Any] | None:
    """This file's entry in the manifest beside it (None without a manifest or entry)."""
    manifest = read_manifest_for(tflite_path)
    if not manifest:
        return None
    return (manifest.get("artifacts") or {}).get(Path(tflite_path).name)


def describe_path(path: str | Path) -> dict[str, Any]:
    """What a checkpoint, a .tflite or an export folder contains (for ``ftk info``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"not found: {path}")
    if path.is_dir():
        manifest_file = path / MANIFEST_NAME
        if not manifest_file.is_file():
            raise InputError(f"{path} is a folder without {MANIFEST_NAME}; not an ftk export",
                             hint="give a checkpoint, a .tflite or an export folder")

        manifest = read_json(manifest_file, "export manifest")
        files = {}
        for name, entry in (manifest.get("artifacts") or {}).items():
            file = path / name
            files[name] = {"present": file.is_file(),
                           "sha256_ok": file.is_file() and sha256_file(file) == entry.get("sha256")}
        return {"kind": "export", "path": str(path), "manifest": manifest, "files": files}
    if path.suffix.lower() == ".tflite":
        inspected = _inspect(path)  # bounds-checked: a truncated or foreign file gets a clear error
        load_interpreter(path, num_threads=1)
        manifest = read_manifest_for(path)
        entry = (manifest or {}).get("artifacts", {}).get(path.name) if manifest else None
        return {"kind": "tflite", "path": str(path), "size_bytes": path.stat().st_size,
                "sha256": sha256_file(path), "inspect": inspected,
                "spec": (manifest or {}).get("spec"), "manifest_entry": entry,
                "matches_manifest": None if entry is None else entry.get("sha256") == sha256_file(path)}

    meta = read_checkpoint_meta(path)
    return {"kind": "checkpoint", "path": str(path), "size_bytes": path.stat().st_size,
            "sha256": sha256_file(path), "meta": meta.to_dict()}


def _inspect(path: Path) -> dict[str, Any]:
    return inspect_tflite(path).to_dict()
