"""The manifest belongs to a file: contract_for on the shared tiny export (real litert-torch files, real LiteRT),
the contract embedded in each .tflite, a modified file and an edited manifest refused (exit 2) and shown by
``ftk info`` as warnings, unsafe artifact keys refused, a lone copy still carrying its contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.unit.export_helpers import copy_export, error_lines, run_cli
from toolkit.errors import ModelFileError
from toolkit.io import sha256_file
from toolkit.manifest import FORMAT_VERSION, contract_for, read_manifest
from toolkit.tflite.metadata import CONTRACT_METADATA_NAME, read_contract, read_metadata, remove_contract

NAMES = {"float32": "model_float32.tflite", "int8": "model_int8.tflite"}


def _edit_manifest(folder: Path, change) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _change_one_weight(path: Path) -> None:
    """Flip a byte in the middle of the largest constant buffer: a valid model, just not the exported one."""
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(path.read_bytes())
    model = schema.Model.GetRootAs(data, 0)
    sizes = [(model.Buffers(i).DataLength(), i) for i in range(model.BuffersLength())]
    _, index = max(sizes)
    table = model.Buffers(index)._tab
    start = table.Vector(table.Offset(4))
    data[start + model.Buffers(index).DataLength() // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_export_embeds_the_contract_in_each_file(export_dir, ref_ckpt):
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION == 1
    for precision, name in NAMES.items():
        path = export_dir / name
        entry = manifest["artifacts"][name]
        embedded = read_contract(path)
        # The manifest's hash is of the file as shipped, contract included.
        assert entry["sha256"] == sha256_file(path) and entry["size_bytes"] == path.stat().st_size
        assert entry["embedded_contract"] == {"metadata": CONTRACT_METADATA_NAME, "format_version": 1}
        assert embedded["format_version"] == 1 and embedded["precision"] == precision
        assert embedded["spec"] == manifest["spec"]
        assert embedded["source_checkpoint"]["sha256"] == sha256_file(ref_ckpt)
        assert embedded["source_checkpoint"]["name"] == ref_ckpt.name
        assert embedded["ftk_version"] == manifest["tools"]["ftk"]
        # The converter's own metadata is still there beside ours.
        assert "min_runtime_version" in read_metadata(path)
        from toolkit.tflite.inspect import inspect_tflite

        assert {"min_runtime_version", CONTRACT_METADATA_NAME} <= set(inspect_tflite(path).metadata_names)
        # No machine paths travel inside the model.
        assert str(export_dir.parent) not in json.dumps(embedded)
        assert str(ref_ckpt.parent) not in json.dumps(embedded)
    calibration = read_contract(export_dir / NAMES["int8"])["calibration"]
    manifest_calibration = manifest["artifacts"][NAMES["int8"]]["quantization"]["calibration"]
    # 50 faces read: 40 calibrated on (--calibration-limit 40), the 10 beyond held out for parity.
    assert calibration["faces"] == manifest_calibration["faces"] == 40
    assert calibration["crops_sha256"] == manifest_calibration["crops_sha256"]
    assert calibration["source"] == Path(manifest_calibration["source"]).name
    assert read_contract(export_dir / NAMES["float32"])["calibration"] is None


def test_contract_from_manifest_then_embedded_then_none(export_dir, tmp_path, capsys):
    beside = contract_for(export_dir / NAMES["int8"])
    assert beside.source == "manifest" and beside.precision == "int8" and beside.spec.backbone == "tiny"

    lone_dir = tmp_path / "assets"
    lone_dir.mkdir()
    lone = lone_dir / "face.tflite"
    shutil.copyfile(export_dir / NAMES["int8"], lone)
    alone = contract_for(lone)
    assert alone.source == "embedded" and alone.precision == "int8" and alone.spec == beside.spec
    assert alone.source_checkpoint["sha256"] == beside.source_checkpoint["sha256"]

    # A manifest beside that lists other files does not describe this one.
    (lone_dir / "manifest.json").write_text(json.dumps(
        {"format_version": 1, "spec": {**beside.spec.to_dict(), "input_size": 64},
         "artifacts": {"other.tflite": {"precision": "float32", "sha256": "0" * 64}}}))
    assert contract_for(lone).source == "embedded"
    assert contract_for(lone).spec.input_size == 32

    code, stdout, err = run_cli(["info", lone], capsys)
    assert code == 0, err
    assert "contract: the contract embedded in the file" in stdout and "backbone: tiny" in stdout
    assert "int8 from checkpoint tiny_reference.pt" in stdout and "calibrated on 40 faces" in stdout

    assert remove_contract(lone) and read_contract(lone) is None and not remove_contract(lone)
    assert contract_for(lone) is None
    code, stdout, _ = run_cli(["info", lone], capsys)
    assert code == 0 and "spec: unknown" in stdout


def test_modified_file_is_refused_and_info_warns(export_dir, ref_ckpt, tmp_path, capsys):
    out = copy_export(export_dir, tmp_path / "exp")
    model = out / NAMES["float32"]
    _change_one_weight(model)
    with pytest.raises(ModelFileError, match="sha256 .* differs from its entry .* modified after export"):
        contract_for(model)
    from toolkit.embedders import load_embedder

    with pytest.raises(ModelFileError, match="modified after export"):
        load_embedder(model)  # evaluate, compare and match load models this way
    for args in (["parity-check", model, "--checkpoint", ref_ckpt], ["bench", model, "--runs", "1"]):
        code, _, err = run_cli(args, capsys)
        lines = error_lines(err)
        assert code == 2 and len(lines) == 1 and "modified after export" in lines[0], (args, err)
    code, stdout, err = run_cli(["info", model], capsys)
    assert code == 0, err
    assert "warning: model_float32.tflite's sha256" in stdout and "modified after export" in stdout
    code, stdout, _ = run_cli(["info", out], capsys)
    assert code == 0 and "model_float32.tflite: float32" in stdout and "file MODIFIED" in stdout
    assert "model_int8.tflite: int8" in stdout and "file ok" in stdout


def test_edited_manifest_is_refused_and_info_warns(export_dir, tmp_path, capsys):
    """The file is untouched (its sha256 matches) but the manifest now tells another story: the contract inside
    the file catches it."""
    out = copy_export(export_dir, tmp_path / "exp")
    _edit_manifest(out, lambda m: m["spec"].update(input_size=48, box_margin=12))
    model = out / NAMES["float32"]
    with pytest.raises(ModelFileError, match=r"disagrees with the contract embedded .*box_margin: manifest 12, "
                                             r"file 0; input_size: manifest 48, file 32"):
        contract_for(model)
    code, _, err = run_cli(["bench", model, "--runs", "1"], capsys)
    assert code == 2 and len(error_lines(err)) == 1 and "manifest was edited" in error_lines(err)[0]
    code, stdout, err = run_cli(["info", model], capsys)
    assert code == 0, err
    assert "warning:" in stdout and "the manifest was edited after export" in stdout
    assert "input: [1, 32, 32, 3]" in stdout  # what the file says, not the edited value
    code, stdout, _ = run_cli(["info", out, "--json"], capsys)
    files = json.loads(stdout[stdout.index("{"):])["files"]
    state = files[NAMES["float32"]]
    assert state["sha256_ok"] is True and "manifest was edited" in state["warnings"][0]

    out2 = copy_export(export_dir, tmp_path / "exp2")
    _edit_manifest(out2, lambda m: m["artifacts"][NAMES["int8"]].update(precision="float32"))
    with pytest.raises(ModelFileError, match="precision: manifest 'float32', file 'int8'"):
        contract_for(out2 / NAMES["int8"])


@pytest.mark.parametrize("key", ["../outside.tflite", "/tmp/abs.tflite", "sub/model.tflite", "..", "a\\b.tflite",
                                 ""])
def test_artifact_keys_must_be_plain_file_names(export_dir, tmp_path, capsys, key):
    out = copy_export(export_dir, tmp_path / "exp")
    shutil.copyfile(out / NAMES["float32"], tmp_path / "outside.tflite")
    _edit_manifest(out, lambda m: m["artifacts"].update({key: {"precision": "float32"}}))
    with pytest.raises(ModelFileError, match="not a plain file name"):
        read_manifest(out)
    with pytest.raises(ModelFileError, match="not a plain file name"):
        contract_for(out / NAMES["float32"])
    code, _, err = run_cli(["info", out], capsys)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and "outside the export folder" in lines[0]


def test_manifest_layout_is_versioned(export_dir, tmp_path):
    out = copy_export(export_dir, tmp_path / "exp")
    _edit_manifest(out, lambda m: m.update(format_version=2))
    with pytest.raises(ModelFileError, match="format_version 2; this ftk reads up to 1"):
        contract_for(out / NAMES["float32"])
    _edit_manifest(out, lambda m: m.update(format_version="1"))
    with pytest.raises(ModelFileError, match="positive integer"):
        read_manifest(out)
    _edit_manifest(out, lambda m: m.update(format_version=1, artifacts=[{"precision": "int8", "file": NAMES["int8"]}]))
    with pytest.raises(ModelFileError, match="must map file names"):
        read_manifest(out)
    lone = tmp_path / "lone" / NAMES["float32"]
    lone.parent.mkdir()
    shutil.copyfile(export_dir / NAMES["float32"], lone)
    from toolkit.tflite.metadata import write_contract

    write_contract(lone, {**read_contract(lone), "format_version": 99})
    with pytest.raises(ModelFileError, match="embedded contract format_version 99; this ftk reads up to 1"):
        contract_for(lone)
    # Written before the key existed: the same layout, read as version 1.
    _edit_manifest(out, lambda m: (m.pop("format_version"), m.update(artifacts=json.loads(
        (export_dir / "manifest.json").read_text())["artifacts"])))
    assert contract_for(out / NAMES["int8"]).source == "manifest"


def test_lone_copy_embeds_like_the_export(export_dir, faces_csv, tmp_path):
    """A .tflite copied alone (as into an app's assets/) loads through its embedded contract and gives the same
    embeddings as beside its manifest; bench builds its input from the same spec."""
    from toolkit.bench.host import spec_for
    from toolkit.data.faces import load_face_crops
    from toolkit.embedders import load_embedder

    lone = tmp_path / "empty" / "model_int8.tflite"
    lone.parent.mkdir()
    shutil.copyfile(export_dir / NAMES["int8"], lone)
    beside = load_embedder(export_dir / NAMES["int8"])
    alone = load_embedder(lone)
    assert alone.spec == beside.spec and spec_for(lone) == beside.spec
    faces = load_face_crops(faces_csv, alone.spec, limit=8, progress=False).images
    np.testing.assert_array_equal(alone.embed(faces), beside.embed(faces))
