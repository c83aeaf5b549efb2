"""The contract inside the .tflite changes nothing else: the converter's own files (float32, static int8, dynamic
int8) before and after embedding give bit-identical outputs in ai-edge-litert and, in the slow test, on the app's
TensorFlow Lite 2.12 (the cached tensorflow-cpu venv of toolkit.deploy.runtime_verify)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from toolkit.tflite.metadata import CONTRACT_METADATA_NAME, read_contract, read_metadata, write_contract

CONTRACT = {"format": "ftk.contract", "format_version": 1, "precision": "test", "spec": {"input_size": 32},
            "note": "ünïcode survives"}


def _litert_outputs(path: Path, faces: np.ndarray) -> np.ndarray:
    from toolkit.embedders import load_interpreter

    interpreter = load_interpreter(path, num_threads=1)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    rows = []
    for i in range(len(faces)):
        interpreter.set_tensor(inp["index"], faces[i : i + 1].astype(np.float32))
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"]).copy())
    return np.concatenate(rows)


def _with_contract(source: Path, dest_dir: Path) -> Path:
    dest_dir.mkdir(exist_ok=True)
    dest = dest_dir / source.name
    shutil.copyfile(source, dest)
    write_contract(dest, CONTRACT)
    return dest


def _data_alignments(path: Path) -> set[int]:
    from ai_edge_litert import schema_py_generated as schema

    data = path.read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    out = set()
    for i in range(model.BuffersLength()):
        table = model.Buffers(i)._tab
        if table.Offset(4) and model.Buffers(i).DataLength():
            out.add(table.Vector(table.Offset(4)) % 16)
    return out


@pytest.mark.parametrize("variant", ["float32", "int8", "dynamic_int8"])
def test_embedding_the_contract_keeps_the_model(tiny_tflite_models, tmp_path, variant):
    from toolkit.deploy.runtime_verify import verification_faces
    from toolkit.tflite.inspect import inspect_tflite

    original = tiny_tflite_models[variant]
    assert read_contract(original) is None  # straight from litert-torch
    embedded = _with_contract(original, tmp_path / "with")
    assert read_contract(embedded) == CONTRACT
    before, after = read_metadata(original), read_metadata(embedded)
    assert set(after) == set(before) | {CONTRACT_METADATA_NAME}
    assert all(after[name] == value for name, value in before.items())  # the converter's entries untouched
    a, b = inspect_tflite(original), inspect_tflite(embedded)
    assert [(op.name, op.version, op.count) for op in a.ops] == [(op.name, op.version, op.count) for op in b.ops]
    assert (a.input_shape, a.output_shape, a.min_runtime, a.hybrid_int8, a.weight_types) == \
           (b.input_shape, b.output_shape, b.min_runtime, b.hybrid_int8, b.weight_types)
    assert _data_alignments(embedded) == {0}  # constant buffers 16-byte aligned (schema force_align)
    faces = verification_faces(32)
    np.testing.assert_array_equal(_litert_outputs(embedded, faces), _litert_outputs(original, faces))

    # Writing again replaces the entry (one ftk_contract, the file does not grow with each write).
    size = embedded.stat().st_size
    write_contract(embedded, CONTRACT)
    assert list(read_metadata(embedded)).count(CONTRACT_METADATA_NAME) == 1 and embedded.stat().st_size == size
    np.testing.assert_array_equal(_litert_outputs(embedded, faces), _litert_outputs(original, faces))


@pytest.mark.slow
def test_tensorflow_2_12_runs_files_with_the_contract(tiny_tflite_models, tmp_path, monkeypatch):
    """The app's runtime loads each file with the contract and computes exactly what it computes without it."""
    from toolkit.deploy.runtime_verify import run_in_runtime, runtime_venv, verification_faces, verify_runtime
    from toolkit.models.registry import default_spec

    if not os.environ.get("FTK_RUNTIME_CACHE"):
        monkeypatch.setenv("FTK_RUNTIME_CACHE", str(Path.home() / ".cache" / "ftk" / "runtimes"))
    venv, _ = runtime_venv("2.12.0")
    faces = verification_faces(32).astype(np.float32)
    for variant in ("float32", "int8"):
        original = tiny_tflite_models[variant]
        embedded = _with_contract(original, tmp_path / variant)
        theirs_before, version = run_in_runtime(venv, original, faces)
        theirs_after, _ = run_in_runtime(venv, embedded, faces)
        assert version == "2.12.0"
        np.testing.assert_array_equal(theirs_after, theirs_before)
        check = verify_runtime(embedded, default_spec("tiny"), "2.12.0")
        print(f"\nTF {check.tensorflow_version} {variant} with contract: loads, outputs identical to the file "
              f"without it; cosine vs ai-edge-litert min {check.cosine_min:.7f} mean {check.cosine_mean:.7f} "
              f"max|diff| {check.max_abs_diff:.2e}")
        assert check.passed and check.cosine_min >= (0.99999 if variant == "float32" else 0.999)
