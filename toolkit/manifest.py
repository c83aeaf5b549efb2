"""The model contract of one .tflite: from the export's ``manifest.json`` when it vouches for this file, else from
the contract embedded in the file itself.

A manifest belongs to the files it lists, not to the folder: ``manifest.json`` beside a ``.tflite`` applies only
when its ``artifacts`` has an entry under that file's name *and* the file's sha256 is the entry's. A listed file
whose hash differs is refused (it was changed after export). Every artifact key must be a plain file name (no
path separators, no ``..``), so nothing read from a manifest can point outside the export folder.

``ftk export`` writes one layout, versioned by ``format_version`` (:data:`FORMAT_VERSION`)::

    {"format_version": 1, "format": "ftk.export/1", "created_at": ..., "spec": {...ModelSpec...},
     "input": {...}, "output": {...}, "source_checkpoint": {...}, "tools": {...},
     "artifacts": {"model_float32.tflite": {"precision": "float32", "sha256": ..., "size_bytes": ..., ...}, ...}}

and embeds each artifact's contract (:func:`contract_document`: format version, spec, precision, source checkpoint
sha256, calibration summary, ftk version) in the file's flatbuffer metadata (:mod:`toolkit.tflite.metadata`), so a
file copied alone into an app's ``assets/`` still says what it needs. A manifest without ``format_version`` is read
as version 1 (the same layout, written before the key existed); a newer version is refused.

Public entry points: :func:`contract_for` (what every reader calls: embedders, bench, parity, deploy),
:func:`artifact_status` (the same checks as warnings, for ``ftk info``), :func:`read_manifest`,
:func:`manifest_artifacts`; :func:`contract_document` is what ``ftk export`` embeds in each file
(:func:`toolkit.export.finalize_export`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from toolkit.constants import MANIFEST_NAME
from toolkit.errors import InputError, ModelFileError
from toolkit.io import read_json, sha256_file
from toolkit.spec import ModelSpec, short_repr
from toolkit.tflite.inspect import graph_io_shapes
from toolkit.tflite.metadata import read_contract

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONTRACT_FORMAT = "ftk.contract"
# Source-checkpoint facts that travel with the file (no machine paths: they mean nothing on another machine).
_SOURCE_KEYS = ("sha256", "backbone", "trained_input_size", "num_classes", "weights_source", "epoch", "config_hash")


@dataclass
class ArtifactContract:
    """What one .tflite takes and gives, and where that was read from."""

    path: Path
    spec: ModelSpec
    source: str  # "manifest" (manifest.json beside the file, hash verified) | "embedded" (the file's own metadata)
    precision: str | None
    sha256: str  # of the file, as read now
    entry: dict[str, Any] = field(default_factory=dict)  # the manifest's artifact entry (or the embedded contract)
    source_checkpoint: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None  # the whole manifest when source == "manifest"
    embedded: dict[str, Any] | None = None  # the contract inside the file, when it has one

    def describe(self) -> str:
        where = MANIFEST_NAME if self.source == "manifest" else "the contract embedded in the file"
        return f"{self.path.name}: {self.spec.backbone} {self.precision or '?'} from {where}"


# --------------------------------------------------------------------------------------------------------------------
# the manifest file
# --------------------------------------------------------------------------------------------------------------------
def is_plain_file_name(key: Any) -> bool:
    """A name the manifest gives a file beside it: no separators (either OS), no ``..``, not absolute, no NUL."""
    text = key if isinstance(key, str) else ""
    return not (not text or text in (".", "..") or "\0" in text or "/" in text or "\\" in text
                or PurePosixPath(text).name != text or PureWindowsPath(text).name != text)


def check_artifact_name(key: Any, manifest_path: Path | str) -> str:
    """An artifact key must be a plain file name in the export folder: no separators, no ``..``, not absolute."""
    text = key if isinstance(key, str) else ""
    if not is_plain_file_name(key):
        raise ModelFileError(f"{manifest_path}: artifact key {key!r} is not a plain file name; refusing to read a "
                             "file outside the export folder",
                             hint="artifact keys are file names beside manifest.json, e.g. model_int8.tflite")
    return text


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and validate an export manifest (the file, or the folder holding ``manifest.json``).

    Refused with ModelFileError: not a JSON object, a ``format_version`` this ftk does not know, ``artifacts`` that
    is not a mapping of plain file names to objects, a ``spec`` that is not a valid ModelSpec.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        manifest = read_json(path, "export manifest")
    except ModelFileError:
        raise
    except InputError as exc:
        raise ModelFileError(exc.message, hint=exc.hint) from None
    if not isinstance(manifest, dict):
        raise ModelFileError(f"{path} is not an ftk export manifest (not a JSON object)")
    _check_format_version(manifest.get("format_version", FORMAT_VERSION), f"{path}: manifest")
    artifacts = manifest.get("artifacts", {})
    if not isinstance(artifacts, dict):
        raise ModelFileError(f"{path}: 'artifacts' must map file names to entries, got {type(artifacts).__name__}",
                             hint="export the model again with ftk export")
    check_field_types(manifest, _DOCUMENT_FIELDS, f"{path}:")
    for key, entry in artifacts.items():
        check_artifact_name(key, path)
        if not isinstance(entry, dict):
            raise ModelFileError(f"{path}: the entry for {key} is not an object")
        _check_entry(entry, f"{path}: the entry for {key}:")
    if "spec" in manifest:
        try:
            ModelSpec.from_dict(manifest["spec"])
        except InputError as exc:
            raise ModelFileError(f"{path}: invalid spec: {exc.message}") from None
    return manifest


# The types of the fields ftk reads from a manifest, its artifact entries and an embedded contract (None: absent).
# A crafted file with another type is refused here, once, instead of crashing whichever reader touches it first.
_DOCUMENT_FIELDS = {"spec": dict, "precision": str, "source_checkpoint": dict, "input": dict, "output": dict,
                    "quantization": dict, "calibration": dict, "tools": dict, "created_at": str, "ftk_version": str,
                    "format": str}
_ENTRY_FIELDS = {"precision": str, "sha256": str, "size_bytes": int, "ops": list, "min_runtime": str,
                 "unknown_ops": list, "external_buffers": bool, "quantization": dict}
_OP_FIELDS = {"name": str, "version": int, "count": int}
_TYPE_WORDS = {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "true or false"}


def check_field_types(document: dict[str, Any], fields: dict[str, type], where: str) -> None:
    """Each of ``fields`` present in ``document`` has its type (ModelFileError naming the first that does not)."""
    for key, kind in fields.items():
        value = document.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ModelFileError(f"{where} {key} must be {_TYPE_WORDS[kind]}, got {short_repr(value)}",
                                 hint="export the model again")


def _check_entry(entry: dict[str, Any], where: str) -> None:
    check_field_types(entry, _ENTRY_FIELDS, where)
    for op in entry.get("ops") or []:
        if not isinstance(op, dict):
            raise ModelFileError(f"{where} ops must list objects, got {short_repr(op)}")
        check_field_types(op, _OP_FIELDS, f"{where} an op's")


def _check_format_version(version: Any, where: str) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{where} format_version must be a positive integer, got {short_repr(version)}")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{where} format_version {version}; this ftk reads up to {FORMAT_VERSION}",
                             hint="upgrade ftk, or export the model again with this one")


def manifest_artifacts(manifest_or_folder: dict[str, Any] | str | Path) -> dict[str, dict[str, Any]]:
    """file name -> entry of a validated manifest (or of the manifest in a folder)."""
    manifest = manifest_or_folder if isinstance(manifest_or_folder, dict) else read_manifest(manifest_or_folder)
    return dict(manifest.get("artifacts") or {})


def _manifest_beside(path: Path) -> tuple[Path, dict[str, Any]] | None:
    manifest_path = path.with_name(MANIFEST_NAME)
    if not manifest_path.is_file():
        return None
    return manifest_path, read_manifest(manifest_path)


# --------------------------------------------------------------------------------------------------------------------
# the contract of one file
# --------------------------------------------------------------------------------------------------------------------
def contract_for(path: str | Path) -> ArtifactContract | None:
    """The contract of the .tflite at ``path``, or None when nothing states one.

    1. ``manifest.json`` beside the file, if it lists this file name under ``artifacts``: the file's sha256 must be
       the entry's (else ModelFileError, exit 2: the file changed after export), and when the file also embeds a
       contract, the manifest's spec and precision must agree with it (else ModelFileError: the manifest was
       edited). Returns the manifest's spec and entry (``source == "manifest"``).
    2. Else the contract embedded in the file's metadata (``source == "embedded"``).
    3. Else None (a foreign model: the caller needs the input contract from the command line).

    A manifest beside the file that does not list it is ignored (it describes other files). Call this, never read
    ``manifest.json`` for a model yourself.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    embedded = read_contract(path)
    own_spec = embedded_spec(path, embedded) if embedded is not None else None
    digest = sha256_file(path)
    beside = _manifest_beside(path)
    if beside is not None:
        manifest_path, manifest = beside
        entry = (manifest.get("artifacts") or {}).get(path.name)
        if entry is not None:
            problems = _manifest_problems(path, manifest_path, manifest, entry, embedded, digest)
            if problems:
                raise ModelFileError(problems[0], hint="export the model again (or restore the original file)")
            if "spec" not in manifest:
                raise ModelFileError(f"{manifest_path} lists {path.name} but has no spec")
            spec = ModelSpec.from_dict(manifest["spec"])  # read_manifest validated it
            check_against_graph(path, spec)
            return ArtifactContract(
                path=path, spec=spec, source="manifest",
                precision=entry.get("precision"), sha256=digest, entry=entry,
                source_checkpoint=dict(manifest.get("source_checkpoint") or {}), manifest=manifest,
                embedded=embedded)
    if embedded is None or own_spec is None:
        return None
    check_against_graph(path, own_spec)
    return ArtifactContract(path=path, spec=own_spec, source="embedded", precision=embedded.get("precision"),
                            sha256=digest, entry=embedded,
                            source_checkpoint=dict(embedded.get("source_checkpoint") or {}), embedded=embedded)


def embedded_spec(path: Path, embedded: dict[str, Any]) -> ModelSpec:
    """The spec of a contract read from a file, once its format version, field types and spec are valid."""
    _check_format_version(embedded.get("format_version"), f"{path}: embedded contract")
    check_field_types(embedded, _DOCUMENT_FIELDS, f"{path}: the embedded contract's")
    try:
        return ModelSpec.from_dict(embedded.get("spec"))
    except InputError as exc:
        raise ModelFileError(f"{path}: the embedded contract has an invalid spec: {exc.message}") from None


def check_against_graph(path: Path, spec: ModelSpec) -> None:
    """The graph in the file takes and gives what ``spec`` says: NHWC [1, S, S, 3] in, embedding_dim out."""
    taken, given = graph_io_shapes(path)
    said = [1, spec.input_size, spec.input_size, 3]
    if len(taken) != 4 or taken[1:] != said[1:]:
        raise ModelFileError(f"{path}: its contract says the input is {said}, but the graph takes {taken}",
                             hint="the contract does not describe this model; export it again")
    if not given or given[-1] != spec.embedding_dim:
        raise ModelFileError(f"{path}: its contract says {spec.embedding_dim}-d embeddings, but the graph outputs "
                             f"{given}", hint="the contract does not describe this model; export it again")


def _manifest_problems(path: Path, manifest_path: Path, manifest: dict[str, Any], entry: dict[str, Any],
                       embedded: dict[str, Any] | None, digest: str) -> list[str]:
    """Why the manifest's entry cannot be trusted for this file (empty when it can)."""
    problems = []
    expected = entry.get("sha256")
    if expected != digest:
        problems.append(f"{path.name}'s sha256 ({digest[:12]}) differs from its entry in {manifest_path} "
                        f"({str(expected)[:12]}): the file was modified after export")
    if embedded is not None:
        differences = []
        if embedded.get("spec") != manifest.get("spec"):
            mine, theirs = embedded.get("spec") or {}, manifest.get("spec") or {}
            for key in sorted(set(mine) | set(theirs)):
                if mine.get(key) != theirs.get(key):
                    differences.append(f"{key}: manifest {short_repr(theirs.get(key))}, "
                                       f"file {short_repr(mine.get(key))}")
        if embedded.get("precision") != entry.get("precision"):
            differences.append(f"precision: manifest {short_repr(entry.get('precision'))}, "
                               f"file {short_repr(embedded.get('precision'))}")
        if differences:
            problems.append(f"{manifest_path} disagrees with the contract embedded in {path.name} ("
                            + "; ".join(differences) + "): the manifest was edited after export")
    return problems


@dataclass
class ArtifactStatus:
    """What ``ftk info`` shows for one file: the contract it can find, and every check that failed (as text)."""

    spec: dict[str, Any] | None
    source: str | None  # "manifest" | "embedded" | None
    manifest_entry: dict[str, Any] | None
    matches_manifest: bool | None  # None: no manifest entry for this file
    embedded: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)


def artifact_status(path: str | Path) -> ArtifactStatus:
    """The checks of :func:`contract_for` without refusing: for showing a modified file or an edited manifest.
    (A contract that is invalid, or that does not fit the file's graph, is still refused: there is nothing to show.)

    The spec shown is the one that can be trusted most: the manifest's when its entry verifies, else the contract
    embedded in the file, else the (unverified) manifest's, with a warning saying why.
    """
    path = Path(path)
    embedded = read_contract(path)
    digest = sha256_file(path)
    beside = _manifest_beside(path)
    manifest, entry, manifest_path = None, None, None
    if beside is not None:
        manifest_path, manifest = beside
        entry = (manifest.get("artifacts") or {}).get(path.name)
    if embedded is not None:  # shown or not, a contract the file carries must be valid and fit its graph
        check_against_graph(path, embedded_spec(path, embedded))
    if entry is None:
        if embedded is not None:
            return ArtifactStatus(spec=embedded.get("spec"), source="embedded", manifest_entry=None,
                                  matches_manifest=None, embedded=embedded)
        return ArtifactStatus(spec=None, source=None, manifest_entry=None, matches_manifest=None, embedded=None)
    problems = _manifest_problems(path, manifest_path, manifest, entry, embedded, digest)
    matches = entry.get("sha256") == digest
    if embedded is not None and problems:
        spec, source = embedded.get("spec"), "embedded"
    else:
        spec, source = manifest.get("spec"), "manifest"
        if spec is not None:
            check_against_graph(path, ModelSpec.from_dict(spec))
    return ArtifactStatus(spec=spec, source=source, manifest_entry=entry, matches_manifest=matches,
                          embedded=embedded, warnings=problems)


# --------------------------------------------------------------------------------------------------------------------
# writing (ftk export)
# --------------------------------------------------------------------------------------------------------------------
def contract_document(manifest: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The contract embedded in one artifact: format version, spec, precision, I/O, source checkpoint (sha256 and
    facts, no machine path), quantisation with a calibration summary (face count, crops hash, source name), tools."""
    quantization = entry.get("quantization")
    calibration = None
    if isinstance(quantization, dict):
        quantization = dict(quantization)
        calibration = quantization.pop("calibration", None)
        if isinstance(calibration, dict):
            calibration = dict(calibration)
            if calibration.get("source"):
                calibration["source"] = Path(str(calibration["source"])).name
    source = manifest.get("source_checkpoint") or {}
    tools = manifest.get("tools") or {}
    document = {
        "format": CONTRACT_FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": manifest.get("created_at"),
        "precision": entry.get("precision"),
        "spec": manifest.get("spec"),
        "input": manifest.get("input"),
        "output": manifest.get("output"),
        "source_checkpoint": {**{k: source.get(k) for k in _SOURCE_KEYS},
                              "name": Path(str(source["path"])).name if source.get("path") else None},
        "quantization": quantization,
        "calibration": calibration,
        "ftk_version": tools.get("ftk"),
        "tools": tools,
    }
    # Plain JSON values only (numpy scalars become numbers or text), so what is read back equals what was written.
    return json.loads(json.dumps(document, default=_json_default))


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    return str(value)
