"""Read a .tflite flatbuffer without running it: which ops at which versions, the runtime they need, where the
weights live, and whether it contains dynamic-range ("hybrid") int8 kernels.

The parser is the flatbuffer schema module that ships with ai-edge-litert (``schema_py_generated``), imported
inside the function so importing this module stays cheap. Every read is bounds-checked: a missing, truncated or
non-TFLite file raises ``ModelFileError`` instead of returning half an answer.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit import native_logs
from toolkit.errors import DependencyError, ModelFileError
from toolkit.tflite.op_versions import EXTERNAL_BUFFERS_MIN_RUNTIME, max_version, min_runtime_for

log = logging.getLogger(__name__)

TFLITE_IDENTIFIER = b"TFL3"

# Ops whose weights may be int8 while activations stay float: the dynamic-range ("hybrid") kernels.
_WEIGHT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV", "CONV_3D",
               "EMBEDDING_LOOKUP", "LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "SVDF",
               "RNN", "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN"}
_INT_WEIGHT_TYPES = {"int8", "uint8", "int4", "int2"}


@dataclass
class OpInfo:
    name: str
    version: int
    count: int
    min_runtime: str | None  # None: the op-version table does not know this pair


@dataclass
class TFLiteInfo:
    path: str
    size_bytes: int
    sha256: str
    ops: list[OpInfo]
    min_runtime: str | None  # max over the known op versions (and 2.14.0 when weights are external)
    external_buffers: bool
    hybrid_int8: bool
    input_shape: list[int]
    input_dtype: str
    output_shape: list[int]
    output_dtype: str
    schema_version: int
    declared_min_runtime: str | None = None  # the converter's own "min_runtime_version" metadata, if present
    unknown_ops: list[str] = field(default_factory=list)  # "NAME vN" pairs the table does not know
    hybrid_ops: list[str] = field(default_factory=list)  # ops with float activations and integer weights
    num_inputs: int = 1
    num_outputs: int = 1
    weight_types: list[str] = field(default_factory=list)  # dtypes of constant tensors feeding weight ops
    metadata_names: list[str] = field(default_factory=list)  # the flatbuffer's metadata entries ("ftk_contract", ...)

    @property
    def min_runtime_complete(self) -> bool:
        """False when some op version is missing from the table (the true minimum may be higher)."""
        return not self.unknown_ops

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.unknown_ops:
            out.append("minimum runtime unknown for " + ", ".join(self.unknown_ops)
                       + (f" (the converter declared {self.declared_min_runtime})" if self.declared_min_runtime
                          else ""))
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["min_runtime_complete"] = self.min_runtime_complete
        data["warnings"] = self.warnings
        return data


def _schema():
    try:
        with native_logs.quiet_import():
            from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # pragma: no cover - ai-edge-litert is a hard dependency
        raise DependencyError(f"cannot import the TFLite schema from ai-edge-litert: {exc}",
                              hint="reinstall with scripts/setup.sh") from None
    return schema


def _enum_names(enum_cls) -> dict[int, str]:
    return {value: name for name, value in vars(enum_cls).items() if not name.startswith("_") and isinstance(value, int)}


def _vector_end(table, field_offset: int) -> int | None:
    """Byte offset just past a vector field of a flatbuffer table (None when the field is absent)."""
    o = table._tab.Offset(field_offset)
    if not o:
        return None
    start = table._tab.Vector(o)
    return start + table._tab.VectorLen(o)


def inspect_tflite(path: str | Path) -> TFLiteInfo:
    """Parse ``path`` and describe it. Raises ModelFileError when it is missing, truncated or not TFLite."""
    path = Path(path)
    return _guarded(path, _parse)


def graph_io_shapes(path: str | Path) -> tuple[list[int], list[int]]:
    """(input shape, output shape) of the main subgraph's first input and output: what the graph itself takes and
    gives, to hold a contract against. Bounds-checked like :func:`inspect_tflite`; nothing else is parsed."""
    return _guarded(Path(path), _io_shapes)


def _guarded(path: Path, parse):
    """``parse(path, data)`` on the file's bytes; a missing, foreign, truncated or corrupt file is ModelFileError."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError(f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier)",
                             hint="pass the .tflite written by ftk export")
    try:
        return parse(path, data)
    except ModelFileError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})",
                             hint="export it again; the copy may be incomplete") from None


def _main_subgraph(f: "_File"):
    if not 0 < f.model._tab.Pos < f.size:
        raise f.truncated("the root table")
    if f.model.SubgraphsLength() < 1:
        raise ModelFileError(f"{f.path} has no subgraph", hint="export it again")
    main = f.model.Subgraphs(0)
    if main.InputsLength() < 1 or main.OutputsLength() < 1:
        raise ModelFileError(f"{f.path} has no input or output tensor", hint="export it again")
    return main


def _io_shapes(path: Path, data: bytes) -> tuple[list[int], list[int]]:
    f = _File(path, len(data), _schema().Model.GetRootAs(data, 0), {})
    main = _main_subgraph(f)
    return _tensor_info(f, main, int(main.Inputs(0)))[0], _tensor_info(f, main, int(main.Outputs(0)))[0]


@dataclass
class _File:
    """The file being parsed: its name and size (for bounds checks and messages), its root table, dtype names."""
    path: Path
    size: int
    model: Any
    type_names: dict[int, str]

    def truncated(self, what: str) -> ModelFileError:
        return ModelFileError(f"{self.path} is truncated or corrupt ({what} lies beyond the end of the file, "
                              f"{self.size} bytes)", hint="export it again; the copy may be incomplete")

    def type_name(self, tensor) -> str:
        return self.type_names.get(tensor.Type(), str(tensor.Type()))


def _parse(path: Path, data: bytes) -> TFLiteInfo:
    schema = _schema()
    op_names = _enum_names(schema.BuiltinOperator)
    type_names = {k: v.lower() for k, v in _enum_names(schema.TensorType).items()}
    f = _File(path, len(data), schema.Model.GetRootAs(data, 0), type_names)
    model = f.model
    main = _main_subgraph(f)
    schema_version = model.Version()

    external = _external_buffers(f)
    declared, metadata_names = _metadata(model)
    counts, hybrid_ops, weight_types = _scan_operators(f, _operator_codes(model, op_names))
    ops, unknown, min_runtime = _runtime_needs(path, counts, external)
    input_shape, input_dtype = _tensor_info(f, main, int(main.Inputs(0)))
    output_shape, output_dtype = _tensor_info(f, main, int(main.Outputs(0)))

    return TFLiteInfo(
        path=str(path),
        size_bytes=f.size,
        sha256=hashlib.sha256(data).hexdigest(),
        ops=ops,
        min_runtime=min_runtime,
        external_buffers=external,
        hybrid_int8=bool(hybrid_ops),
        input_shape=input_shape,
        input_dtype=input_dtype,
        output_shape=output_shape,
        output_dtype=output_dtype,
        schema_version=int(schema_version),
        declared_min_runtime=declared,
        unknown_ops=unknown,
        hybrid_ops=sorted(set(hybrid_ops)),
        num_inputs=main.InputsLength(),
        num_outputs=main.OutputsLength(),
        weight_types=sorted(weight_types),
        metadata_names=metadata_names,
    )


def _external_buffers(f: _File) -> bool:
    """Whether weights live outside the flatbuffer; inline data and external ranges must lie inside the file."""
    model, external = f.model, False
    for index in range(model.BuffersLength()):
        buffer = model.Buffers(index)
        end = _vector_end(buffer, 4)
        if end is not None and end > f.size:
            raise f.truncated(f"buffer {index}")
        offset, length = buffer.Offset(), buffer.Size()
        if offset > 1 or length > 0:  # offset 1 is the converter's "not yet placed" sentinel
            external = True
            if offset + length > f.size:
                raise f.truncated(f"external buffer {index} (offset {offset}, size {length})")
    if model.ExternalBuffersLength() > 0:
        external = True
    return external


def _metadata(model) -> tuple[str | None, list[str]]:
    """(the converter's declared min_runtime_version or None, the names of all metadata entries)."""
    declared = None
    names = []
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        names.append((entry.Name() or b"").decode("utf-8", "replace"))
        if entry.Name() == b"min_runtime_version":
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
            if not isinstance(raw, int):
                declared = bytes(raw).split(b"\0", 1)[0].decode("ascii", "replace") or None
    return declared, names


def _operator_codes(model, op_names: dict[int, str]) -> list[tuple[str, int]]:
    """(op name, version) per operator code; custom ops as "CUSTOM:name"."""
    codes = []
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        # Builtin codes >= 127 live in builtin_code; older files only fill deprecated_builtin_code.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.CustomCode()
            name = f"CUSTOM:{custom.decode('utf-8', 'replace') if custom else '?'}"
        codes.append((name, code.Version()))
    return codes


def _scan_operators(f: _File, codes: list[tuple[str, int]]):
    """Over every subgraph: (operator count per (name, version), hybrid ops, dtypes of weight-op weights)."""
    counts: dict[tuple[str, int], int] = {}
    hybrid_ops: list[str] = []
    weight_types: set[str] = set()
    for sg_index in range(f.model.SubgraphsLength()):
        subgraph = f.model.Subgraphs(sg_index)
        num_tensors = subgraph.TensorsLength()
        for op_index in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(op_index)
            opcode = op.OpcodeIndex()
            if not 0 <= opcode < len(codes):
                raise ModelFileError(f"{f.path}: operator {op_index} uses opcode {opcode} of {len(codes)}",
                                     hint="the file is corrupt; export it again")
            key = codes[opcode]
            counts[key] = counts.get(key, 0) + 1
            if key[0] not in _WEIGHT_OPS or op.InputsLength() < 2:
                continue
            weights = _weight_input(f, subgraph, op, op_index, num_tensors)
            if weights is not None:
                weight_types.add(weights[0])
                if weights[1]:
                    hybrid_ops.append(f"{key[0]} v{key[1]}")
    return counts, hybrid_ops, weight_types


def _weight_input(f: _File, subgraph, op, op_index: int, num_tensors: int) -> tuple[str, bool] | None:
    """(the weight's dtype, whether the op is hybrid: float activations, integer weights); None without both."""
    inputs = [int(t) for t in op.InputsAsNumpy()]
    if any(t >= num_tensors for t in inputs):
        raise ModelFileError(f"{f.path}: operator {op_index} reads a tensor that does not exist",
                             hint="the file is corrupt; export it again")
    activation = subgraph.Tensors(inputs[0]) if inputs[0] >= 0 else None
    weight = subgraph.Tensors(inputs[1]) if inputs[1] >= 0 else None
    if activation is None or weight is None:
        return None
    weight_type, activation_type = f.type_name(weight), f.type_name(activation)
    activation_quantised = activation.Quantization() is not None and activation.Quantization().ScaleLength() > 0
    hybrid = activation_type in ("float32", "float16") and not activation_quantised and weight_type in _INT_WEIGHT_TYPES
    return weight_type, hybrid


def _runtime_needs(path: Path, counts: dict[tuple[str, int], int],
                   external: bool) -> tuple[list[OpInfo], list[str], str | None]:
    """(the ops with their minimum runtimes, the op versions the table does not know, the model's minimum)."""
    ops: list[OpInfo] = []
    unknown: list[str] = []
    for (name, version), count in sorted(counts.items()):
        needed = min_runtime_for(name, version)
        if needed is None:
            unknown.append(f"{name} v{version}")
        ops.append(OpInfo(name=name, version=version, count=count, min_runtime=needed))
    known = [op.min_runtime for op in ops if op.min_runtime]
    if external:
        known.append(EXTERNAL_BUFFERS_MIN_RUNTIME)
    if unknown:
        log.warning("%s: minimum runtime unknown for %s", path.name, ", ".join(unknown))
    return ops, unknown, max_version(known)


def _tensor_info(f: _File, main, index: int) -> tuple[list[int], str]:
    if not 0 <= index < main.TensorsLength():
        raise ModelFileError(f"{f.path}: input/output tensor {index} does not exist", hint="export it again")
    tensor = main.Tensors(index)
    shape = [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
    return shape, f.type_name(tensor)
