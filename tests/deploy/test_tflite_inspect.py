"""inspect_tflite on real litert-torch conversions (float32, static int8, dynamic-range int8) and broken files."""

from __future__ import annotations

import pytest

from toolkit.errors import ModelFileError
from toolkit.io import sha256_file
from toolkit.models.registry import default_spec
from toolkit.tflite import inspect_tflite
from toolkit.tflite.op_versions import max_version, min_runtime_for, parse_version, version_at_least


def test_float32_export_contract_and_ops(tiny_tflite_models):
    spec = default_spec("tiny")
    info = inspect_tflite(tiny_tflite_models["float32"])
    assert info.input_shape == [1, spec.input_size, spec.input_size, 3]
    assert info.input_dtype == "float32"
    assert info.output_shape == [1, spec.embedding_dim]
    assert info.output_dtype == "float32"
    assert info.sha256 == sha256_file(tiny_tflite_models["float32"])
    assert info.size_bytes == tiny_tflite_models["float32"].stat().st_size
    names = {op.name for op in info.ops}
    assert "CONV_2D" in names and "FULLY_CONNECTED" in names
    assert sum(op.count for op in info.ops if op.name == "CONV_2D") == 3  # the tiny backbone has three convs
    assert not info.external_buffers and not info.hybrid_int8
    assert info.weight_types == ["float32"]
    # min_runtime is the max over the ops' table entries, and agrees with what the converter stamped in.
    assert info.min_runtime == max_version([op.min_runtime for op in info.ops])
    assert info.min_runtime_complete
    assert info.declared_min_runtime is None or parse_version(info.declared_min_runtime) <= parse_version(info.min_runtime)
    assert info.schema_version == 3
    data = info.to_dict()
    assert data["ops"][0].keys() == {"name", "version", "count", "min_runtime"}
    assert data["warnings"] == []


def test_static_int8_is_not_hybrid(tiny_tflite_models):
    info = inspect_tflite(tiny_tflite_models["int8"])
    assert "int8" in info.weight_types
    assert not info.hybrid_int8, info.hybrid_ops
    names = {op.name for op in info.ops}
    assert {"QUANTIZE", "DEQUANTIZE"} <= names
    assert info.input_dtype == "float32" and info.output_dtype == "float32"  # the app still feeds float pixels
    assert version_at_least("2.12.0", info.min_runtime)


def test_dynamic_range_int8_is_flagged_hybrid(tiny_tflite_models):
    info = inspect_tflite(tiny_tflite_models["dynamic_int8"])
    assert info.hybrid_int8
    assert any(op.startswith(("CONV_2D", "FULLY_CONNECTED")) for op in info.hybrid_ops)
    # Newer op versions than the table knows are reported as unknown, never guessed.
    for op in info.ops:
        assert op.min_runtime == min_runtime_for(op.name, op.version)
    assert info.min_runtime_complete == (not any(op.min_runtime is None for op in info.ops))
    if not info.min_runtime_complete:
        assert info.warnings and "unknown" in info.warnings[0]


@pytest.mark.parametrize("cut", [0, 7, 100, 0.5, -1])
def test_truncated_file_is_refused(tiny_tflite_models, tmp_path, cut):
    data = tiny_tflite_models["float32"].read_bytes()
    keep = int(len(data) * cut) if isinstance(cut, float) else (len(data) + cut if cut < 0 else cut)
    broken = tmp_path / "cut.tflite"
    broken.write_bytes(data[:keep])
    with pytest.raises(ModelFileError):
        inspect_tflite(broken)


def test_missing_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        inspect_tflite(tmp_path / "nope.tflite")
    onnx_like = tmp_path / "model.tflite"
    onnx_like.write_bytes(b"\x08\x07\x12\x04onnx" + bytes(200))
    with pytest.raises(ModelFileError, match="TFL3"):
        inspect_tflite(onnx_like)


def test_op_version_table_lookups():
    assert min_runtime_for("CONV_2D", 1) == "1.5.0"
    assert min_runtime_for("CONV_2D", 7) == "2.11.0"
    assert min_runtime_for("BROADCAST_TO", 1) is None  # rolled back upstream
    assert min_runtime_for("CONV_2D", 99) is None
    assert min_runtime_for("NOT_AN_OP", 1) is None
    assert max_version(["2.3.0", "2.11.0", "1.14.0"]) == "2.11.0"  # numeric, not string order
    assert version_at_least("2.12.0", "2.12") and not version_at_least("2.12.0", "2.14.0")


def _externalise_weights(src, dst):
    """Rewrite a model with its largest buffer stored after the flatbuffer (Buffer.offset/size), as converters do
    for models over 2 GB."""
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(src.read_bytes(), 0)
    largest = max(range(len(model.buffers)), key=lambda i: len(model.buffers[i].data if model.buffers[i].data is not None else []))
    payload = bytes(np.asarray(model.buffers[largest].data, dtype=np.uint8))
    model.buffers[largest].data = None
    model.buffers[largest].offset, model.buffers[largest].size = 1, len(payload)  # placeholder, fixed below

    def pack() -> bytes:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    head = pack()
    start = (len(head) + 15) // 16 * 16
    model.buffers[largest].offset = start
    head = pack()
    assert len(head) <= start
    dst.write_bytes(head + bytes(start - len(head)) + payload)
    return dst


def test_external_buffers_detected_and_need_2_14(tiny_tflite_models, tmp_path):
    path = _externalise_weights(tiny_tflite_models["float32"], tmp_path / "external.tflite")
    info = inspect_tflite(path)
    assert info.external_buffers
    assert version_at_least(info.min_runtime, "2.14.0")
    # Cutting off the appended weights is caught as truncation.
    cut = tmp_path / "external_cut.tflite"
    cut.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="external buffer"):
        inspect_tflite(cut)
