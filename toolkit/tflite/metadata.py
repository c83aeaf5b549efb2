"""The model contract inside the .tflite: a named entry in the flatbuffer's ``metadata`` list, pointing to a buffer
that holds UTF-8 JSON.

TFLite keeps ``Model.metadata`` as (name, buffer index) pairs; runtimes ignore names they do not know (the converter
itself stores ``min_runtime_version`` this way), so a file with the contract still loads everywhere the file without
it did. The writer re-packs the model with the flatbuffer object API of the schema module that ships with
ai-edge-litert (the approach of TensorFlow's own ``flatbuffer_utils`` and the TFLite metadata populator); constant
buffers are written 16-byte aligned, as the schema's ``force_align: 16`` asks. Nothing else in the model changes:
the tests compare every output of the file before and after, in ai-edge-litert and on TensorFlow Lite 2.12.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

from toolkit.errors import InputError, ModelFileError
from toolkit.io import check_replaceable, parse_json
from toolkit.tflite.inspect import _schema as schema

CONTRACT_METADATA_NAME = "ftk_contract"
TFLITE_IDENTIFIER = b"TFL3"
BUFFER_ALIGNMENT = 16
# A contract is a few KiB of JSON; anything much larger under our name is not ours.
MAX_CONTRACT_BYTES = 1 << 20


def _schema():
    return schema()


def _read_model_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError(f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier)")
    return data


def read_metadata(path: str | Path, data: bytes | None = None) -> dict[str, bytes]:
    """name -> raw bytes of every ``metadata`` entry of the .tflite at ``path`` (read-only, nothing unpacked)."""
    path = Path(path)
    data = _read_model_bytes(path) if data is None else data
    schema = _schema()
    try:
        model = schema.Model.GetRootAs(data, 0)
        out: dict[str, bytes] = {}
        for index in range(model.MetadataLength()):
            entry = model.Metadata(index)
            name = (entry.Name() or b"").decode("utf-8", "replace")
            buffer_index = entry.Buffer()
            if not 0 <= buffer_index < model.BuffersLength():
                raise ModelFileError(f"{path}: metadata {name!r} points at buffer {buffer_index}, which does not exist")
            buffer = model.Buffers(buffer_index)
            raw = buffer.DataAsNumpy()
            out[name] = b"" if isinstance(raw, int) else bytes(raw)
        return out
    except ModelFileError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})",
                             hint="export it again; the copy may be incomplete") from None


def read_contract(path: str | Path, data: bytes | None = None) -> dict[str, Any] | None:
    """The ftk contract embedded in the .tflite at ``path`` (a dict), or None when the file carries none.

    A file whose ``ftk_contract`` entry is not a JSON object is refused (ModelFileError): it claims a contract it
    does not state.
    """
    path = Path(path)
    raw = read_metadata(path, data).get(CONTRACT_METADATA_NAME)
    if raw is None:
        return None
    if len(raw) > MAX_CONTRACT_BYTES:
        raise ModelFileError(f"{path}: the embedded {CONTRACT_METADATA_NAME} metadata is {len(raw)} bytes; "
                             "not an ftk contract")
    try:
        contract = parse_json(raw.rstrip(b"\0"), f"{path}: the embedded {CONTRACT_METADATA_NAME} metadata")
    except InputError as exc:
        raise ModelFileError(exc.message, hint="export the model again") from None
    if not isinstance(contract, dict):
        raise ModelFileError(f"{path}: the embedded {CONTRACT_METADATA_NAME} metadata is not a JSON object")
    return contract


def write_contract(path: str | Path, contract: dict[str, Any]) -> None:
    """Embed ``contract`` (JSON-serialisable) in the .tflite at ``path`` as the ``ftk_contract`` metadata entry.

    An existing ``ftk_contract`` entry is replaced, every other entry, buffer, tensor and operator is kept. The file
    is rewritten atomically (temp file in the same folder, same permissions, then rename). Weights stored outside the
    flatbuffer (buffer offsets, for models over 2 GB) are refused: re-packing would not carry them.
    """
    path = Path(path)
    data = _read_model_bytes(path)
    payload = json.dumps(contract, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if len(payload) > MAX_CONTRACT_BYTES:
        raise ModelFileError(f"the contract for {path.name} is {len(payload)} bytes; at most {MAX_CONTRACT_BYTES}")
    _rewrite(path, _with_metadata(path, data, CONTRACT_METADATA_NAME, payload))


def remove_contract(path: str | Path) -> bool:
    """Drop the ``ftk_contract`` entry from the .tflite at ``path`` (rewritten atomically); False if it had none.

    What is left is the model as the converter wrote it, plus an empty buffer where the contract was (buffer
    indices of the other entries stay valid).
    """
    path = Path(path)
    data = _read_model_bytes(path)
    if CONTRACT_METADATA_NAME not in read_metadata(path, data):
        return False
    _rewrite(path, _with_metadata(path, data, CONTRACT_METADATA_NAME, None))
    return True


def _rewrite(path: Path, packed: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".meta.tmp", dir=path.parent)
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(packed)
        shutil.copymode(path, tmp_path)
        check_replaceable([path])
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _with_metadata(path: Path, data: bytes, name: str, payload: bytes | None) -> bytes:
    """The model re-packed with metadata ``name`` set to ``payload`` (None: the entry removed)."""
    import flatbuffers
    import numpy as np

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    buffers = model.buffers or []
    for index, buffer in enumerate(buffers):
        if (buffer.offset or 0) > 1 or (buffer.size or 0) > 0:
            raise ModelFileError(f"{path} stores buffer {index} outside the flatbuffer (offset {buffer.offset}); "
                                 "ftk cannot embed its contract in such a file",
                                 hint="models under 2 GB are written with inline weights by ftk export")
    if model.externalBuffers:
        raise ModelFileError(f"{path} uses external buffers; ftk cannot embed its contract in such a file")
    entries = model.metadata or []
    existing = next((m for m in entries if (m.name or b"").decode("utf-8", "replace") == name), None)
    if payload is None:
        if existing is not None:
            entries.remove(existing)
            if 0 < existing.buffer < len(buffers):
                buffers[existing.buffer].data = None
    elif existing is not None and 0 < existing.buffer < len(buffers):
        buffers[existing.buffer].data = np.frombuffer(payload, dtype=np.uint8)
    else:
        if existing is not None:
            entries.remove(existing)
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(payload, dtype=np.uint8)
        buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(buffers) - 1
        entries.append(entry)
    model.buffers = [_AlignedBuffer(b) for b in buffers]
    model.metadata = entries
    builder = flatbuffers.Builder(len(data) + len(payload or b"") + 4096)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


class _AlignedBuffer:
    """Packs a ``BufferT`` with its data vector 16-byte aligned (the generated Pack aligns to 1 byte)."""

    def __init__(self, buffer):
        self.buffer = buffer

    def Pack(self, builder):  # noqa: N802 - the flatbuffers object-API name
        import numpy as np

        schema = _schema()
        b = self.buffer
        data_offset = None
        if b.data is not None:
            raw = np.ascontiguousarray(np.asarray(b.data, dtype=np.uint8)).tobytes()
            builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head : builder.head + len(raw)] = raw
            data_offset = builder.EndVector()
        schema.BufferStart(builder)
        if data_offset is not None:
            schema.BufferAddData(builder, data_offset)
        schema.BufferAddOffset(builder, b.offset or 0)
        schema.BufferAddSize(builder, b.size or 0)
        return schema.BufferEnd(builder)

