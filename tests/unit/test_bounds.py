"""Bounds on what a user (or a crafted file) can ask for, and exit codes that tell the truth (issue 19).

Each test feeds the input that broke ftk (a truncated or crafted .tflite, 100,000-deep JSON, a YAML alias bomb, a
13000 x 13000 PNG, a 16-bit PNG, a scaled gallery, absurd flags) to the real CLI entry point and checks it is now
one `error:` line with exit 2 (never 3, never a silent success). Real tiny models, small files, no mocks.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import copy_of, mounted_tmpfs
from tests.unit.export_helpers import run_cli
from toolkit.errors import InputError, ModelFileError


def refused(args: list, capsys, needle: str, code: int = 2) -> str:
    """Run ``ftk ARGS``; it must print exactly one line, ``error: ...`` holding ``needle``, and exit ``code``."""
    exit_code, _, err = run_cli(args, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_code == code, (exit_code, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def tiny_export(tiny_checkpoint_export, tmp_path_factory) -> Path:
    """A private copy of the one tiny export (model_float32.tflite, input 32, 16-d, + manifest.json)."""
    return copy_of(tiny_checkpoint_export, tmp_path_factory, "bounds_export")


@pytest.fixture
def lone_tflite(tiny_export, tmp_path) -> Path:
    """The tiny float32 model alone in a folder: its contract is the one embedded in the file."""
    path = tmp_path / "alone" / "face.tflite"
    path.parent.mkdir()
    shutil.copyfile(tiny_export / "model_float32.tflite", path)
    return path


def noise_png(path: Path, size: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def png_of_size(path: Path, width: int, height: int) -> Path:
    """A valid all-black 8-bit grayscale PNG of width x height, compressed as it is written (164 KiB for 13000^2)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row, rows = zlib.compressobj(9), b"\0" * (width + 1), 500
    idat = b"".join(packer.compress(row * min(rows, height - y)) for y in range(0, height, rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="session")
def huge_png(tmp_path_factory) -> Path:
    return png_of_size(tmp_path_factory.mktemp("huge") / "huge.png", 13000, 13000)


def embed_raw_contract(path: Path, payload: bytes) -> None:
    """Put ``payload`` in the file's ftk_contract metadata as it is (write_contract would refuse to encode it)."""
    from toolkit.tflite.metadata import CONTRACT_METADATA_NAME, _rewrite, _with_metadata

    _rewrite(path, _with_metadata(path, path.read_bytes(), CONTRACT_METADATA_NAME, payload))


def with_contract(path: Path, **changes) -> Path:
    """Rewrite the file's embedded contract with ``changes`` (``spec__KEY`` changes one spec field)."""
    from toolkit.tflite.metadata import read_contract, write_contract

    contract = read_contract(path)
    for key, value in changes.items():
        if key.startswith("spec__"):
            contract["spec"][key[len("spec__"):]] = value
        else:
            contract[key] = value
    write_contract(path, contract)
    return path


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


# ---------------------------------------------------------------------------------------------------------------------
# one line means one line
# ---------------------------------------------------------------------------------------------------------------------
def test_a_file_name_with_a_newline_cannot_forge_a_second_error_line(tmp_path, capsys):
    name = str(tmp_path / "x.tflite\nerror: forged second line\x1b[2J")
    line = refused(["info", name], capsys, "not found")
    assert "x.tflite\\nerror: forged second line\\x1b[2J" in line


# ---------------------------------------------------------------------------------------------------------------------
# crafted model files: exit 2, never 3
# ---------------------------------------------------------------------------------------------------------------------
def test_a_truncated_tflite_is_exit_2_in_every_command(lone_tflite, tiny_checkpoint, tmp_path, capsys):
    """Cut where the metadata reader used to raise struct.error (exit 3)."""
    truncated = tmp_path / "cut" / "face.tflite"
    truncated.parent.mkdir()
    truncated.write_bytes(lone_tflite.read_bytes()[:300])
    image = noise_png(tmp_path / "a.png")
    (tmp_path / "pairs.txt").write_text("1 1\nA 1 2\n")
    app = tmp_path / "app"
    app.mkdir()
    for args in (["evaluate", truncated, "--pairs", tmp_path / "pairs.txt"],
                 ["compare", image, image, "--model", truncated],
                 ["match", image, "--gallery", tmp_path, "--model", truncated],
                 ["bench", truncated, "--runs", "1", "--no-rss", "--quiet"],
                 ["deploy", truncated, "--app", app],
                 ["info", truncated]):
        refused(args, capsys, "truncated or corrupt")


@pytest.mark.parametrize("where", ["contract", "manifest"])
def test_100000_deep_json_is_refused_not_a_recursion_error(tiny_export, lone_tflite, capsys, where):
    if where == "contract":
        embed_raw_contract(lone_tflite, DEEP_JSON)
        target = lone_tflite
    else:
        (tiny_export / "manifest.json").write_bytes(DEEP_JSON)
        target = tiny_export
    refused(["info", target], capsys, "too deeply")
    refused(["bench", lone_tflite if where == "contract" else tiny_export / "model_float32.tflite",
             "--runs", "1", "--no-rss", "--quiet"], capsys, "too deeply")


def test_a_deep_stage_record_is_an_input_error(tmp_path):
    """A pipeline stage.json is read with read_json: a crafted one is InputError (the stage runs again)."""
    from toolkit.io import read_json

    record = tmp_path / "stage.json"
    record.write_bytes(DEEP_JSON)
    with pytest.raises(InputError, match="too deeply"):
        read_json(record, "stage record")
    record.write_text('{"key": ' + "9" * 5001 + "}")
    with pytest.raises(InputError, match="not valid JSON"):
        read_json(record, "stage record")


def test_a_5001_digit_format_version_is_refused(tiny_export, lone_tflite, capsys):
    manifest = tiny_export / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text.replace('"format_version": 1', '"format_version": ' + "9" * 5001, 1))
    refused(["info", tiny_export], capsys, "not valid JSON")
    contract = json.dumps({"format_version": 1, "spec": {}}).replace("1", "9" * 5001, 1).encode()
    embed_raw_contract(lone_tflite, contract)
    refused(["info", lone_tflite], capsys, "not valid JSON")


@pytest.mark.parametrize("changes, needle", [
    ({"spec": [1, 2]}, "spec must be an object"),
    ({"source_checkpoint": "abc"}, "source_checkpoint must be an object"),
    ({"precision": 8}, "precision must be a string"),
    ({"spec__mean": 127.5}, "mean must be a list of finite numbers"),
    ({"spec__std": ["a", "b", "c"]}, "std must be a list of finite numbers"),
    ({"spec__input_size": "32"}, "input_size must be an integer"),
    ({"spec__channel_order": ["RGB"]}, "channel_order must be a string"),
    ({"spec__backbone": 'x"); Runtime.getRuntime().exec("rm'}, "backbone must be a name"),
])
def test_wrong_types_in_the_embedded_contract_are_refused(lone_tflite, capsys, changes, needle):
    with_contract(lone_tflite, **changes)
    with pytest.raises(ModelFileError, match=needle.replace("(", r"\(")):
        from toolkit.manifest import contract_for

        contract_for(lone_tflite)
    refused(["info", lone_tflite], capsys, needle)
    refused(["bench", lone_tflite, "--runs", "1", "--no-rss", "--quiet"], capsys, needle)


@pytest.mark.parametrize("changes, needle", [
    ({"spec__input_size": 1_000_000}, "input size is 1000000 px, outside a face model's 8..1024"),
    ({"spec__input_size": 64}, "its contract says the input is [1, 64, 64, 3], but the graph takes [1, 32, 32, 3]"),
    ({"spec__embedding_dim": 512}, "its contract says 512-d embeddings, but the graph outputs [1, 16]"),
])
def test_info_holds_the_contract_against_the_graph(lone_tflite, capsys, changes, needle):
    with_contract(lone_tflite, **changes)
    refused(["info", lone_tflite], capsys, needle)


def test_info_still_shows_a_valid_contract(lone_tflite, capsys):
    code, out, err = run_cli(["info", lone_tflite], capsys)
    assert code == 0, err
    assert "input: [1, 32, 32, 3]" in out and "embedding: 16-d" in out


# ---------------------------------------------------------------------------------------------------------------------
# photos ftk cannot take
# ---------------------------------------------------------------------------------------------------------------------
def test_a_16_bit_grayscale_png_is_refused_by_format_not_called_faceless(tiny_checkpoint, tmp_path, capsys):
    deep = tmp_path / "gray16.png"
    Image.fromarray((np.arange(96 * 96).reshape(96, 96) * 7).astype(np.uint16)).save(deep)
    assert Image.open(deep).mode.startswith("I")
    line = refused(["compare", deep, noise_png(tmp_path / "b.png"), "--model", tiny_checkpoint], capsys,
                   "gray16.png: format not supported: 16-bit grayscale PNG (mode I;16)")
    assert "gray16.png: no face" not in line
    gallery = gallery_file(tmp_path / "gallery.npz", tiny_checkpoint)
    refused(["match", deep, "--gallery", gallery, "--model", tiny_checkpoint], capsys,
            "gray16.png: format not supported: 16-bit grayscale")


def test_a_13000_square_png_is_refused_from_its_header(huge_png, tiny_checkpoint, tmp_path, capsys):
    refused(["compare", huge_png, noise_png(tmp_path / "b.png"), "--model", tiny_checkpoint], capsys,
            "huge.png: 13000 x 13000 pixels (169.0 Mpx) is over ftk's cap of 40 Mpx")
    gallery = gallery_file(tmp_path / "gallery.npz", tiny_checkpoint)
    refused(["match", huge_png, "--gallery", gallery, "--model", tiny_checkpoint], capsys, "over ftk's cap")


def test_the_pixel_cap_is_configurable(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    gallery = gallery_file(tmp_path / "gallery.npz", tiny_checkpoint)
    monkeypatch.setenv("FTK_MAX_IMAGE_PIXELS", "1000")
    refused(["match", noise_png(tmp_path / "p.png"), "--gallery", gallery, "--model", tiny_checkpoint], capsys,
            "48 x 48 pixels (0.0 Mpx) is over ftk's cap of 0.001 Mpx")
    monkeypatch.setenv("FTK_MAX_IMAGE_PIXELS", "lots")
    refused(["match", tmp_path / "p.png", "--gallery", gallery, "--model", tiny_checkpoint], capsys,
            "FTK_MAX_IMAGE_PIXELS must be a positive number")


@pytest.mark.shared
def test_prepare_skips_a_huge_photo_and_lists_it(face_folder, huge_png, tmp_path, capsys):
    photos = tmp_path / "people"
    shutil.copytree(face_folder, photos)
    person = sorted(p for p in photos.iterdir() if p.is_dir())[0]
    shutil.copyfile(huge_png, person / "huge.png")
    out = tmp_path / "data" / "faces.csv"
    code, _, err = run_cli(["prepare", photos, "--out", out, "--quiet"], capsys)
    assert code == 0, err
    rejects = (out.parent / "rejects.csv").read_text()
    assert f"{person.name}/huge.png" in rejects and "over ftk's cap" in rejects
    assert out.read_text().count("\n") > 20


# ---------------------------------------------------------------------------------------------------------------------
# a gallery that is not what enrolment writes
# ---------------------------------------------------------------------------------------------------------------------
def gallery_file(path: Path, model: Path, embeddings: np.ndarray | None = None) -> Path:
    """A gallery .npz as `ftk match --save-gallery` lays it out, enrolled (it says) by ``model``: 3 people, one
    unit row each unless ``embeddings`` are given."""
    from toolkit.io import sha256_file
    from toolkit.match import GALLERY_FORMAT
    from toolkit.models.registry import default_spec

    if embeddings is None:
        embeddings = np.random.default_rng(0).normal(size=(3, 16))
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    n = len(embeddings)
    with open(path, "wb") as fh:
        np.savez(fh, format=np.array(GALLERY_FORMAT), embeddings=embeddings.astype(np.float32),
                 person_index=np.arange(n, dtype=np.int32), names=np.array([f"p{i}" for i in range(n)]),
                 paths=np.array([f"p{i}/1.jpg" for i in range(n)]), model_sha256=np.array(sha256_file(model)),
                 model_name=np.array("pytorch"), spec_json=np.array(json.dumps(default_spec("tiny").to_dict())),
                 failed_paths=np.array([], dtype=str), failed_reasons=np.array([], dtype=str))
    return path


@pytest.mark.parametrize("spoil, needle", [
    (lambda e: e * 1000, "not unit length (row 0, p0/1.jpg: length 1000)"),
    (lambda e: np.where(np.arange(len(e))[:, None] == 1, np.nan, e), "1 embeddings with NaN or infinite values"),
])
def test_a_scaled_or_nan_gallery_is_refused_on_load(tiny_checkpoint, tmp_path, capsys, spoil, needle):
    rows = np.random.default_rng(0).normal(size=(3, 16))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    gallery = gallery_file(tmp_path / "gallery.npz", tiny_checkpoint, spoil(rows))
    refused(["match", noise_png(tmp_path / "p.png"), "--gallery", gallery, "--model", tiny_checkpoint], capsys,
            needle)


# ---------------------------------------------------------------------------------------------------------------------
# flags in range
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, needle", [
    (["bench", "m.tflite", "--threads", "1000000"], "1..256"),
    (["bench", "m.tflite", "--threads", "1,100000"], "1..256"),
    (["compare", "a.png", "b.png", "--model", "m.pt", "--threads", "1000000"], "1<=x<=256"),
    (["evaluate", "m.pt", "--pairs", "p.txt", "--threads", "100000"], "1<=x<=256"),
    (["match", "a.png", "--gallery", ".", "--model", "m.pt", "--threads", "257"], "1<=x<=256"),
    (["parity-check", "m.tflite", "--checkpoint", "c.pt", "--threads", "1000000"], "1<=x<=256"),
    (["parity-check", "m.tflite", "--checkpoint", "c.pt", "--layers-top", "-1"], "--layers-top"),
    (["parity-check", "m.tflite", "--checkpoint", "c.pt", "--layers-top", "0"], "--layers-top"),
    (["init-checkpoint", "--out", "c.pt", "--backbone", "tiny", "--input-size", "1000000"], "8..1024"),
    (["init-checkpoint", "--out", "c.pt", "--backbone", "tiny", "--num-classes", "1000000000"], "--num-classes"),
    (["export", "m.pt", "--out", "e", "--input-size", "1000000"], "8..1024"),
])
def test_flags_out_of_range_are_usage_errors(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    for name in ("m.tflite", "m.pt", "c.pt", "a.png", "b.png", "p.txt"):
        (tmp_path / name).write_bytes(b"")
    refused(args, capsys, needle)


@pytest.mark.parametrize("cpus", ["zz", "0", "-1", "0x", "7-4", "1" * 300])
def test_bad_cpu_masks_are_refused_before_anything_runs(lone_tflite, capsys, cpus):
    refused(["bench", lone_tflite, "--device", "adb", "--serial", "127.0.0.1:1", "--cpus", cpus], capsys,
            "names no CPU this ftk can pin to")


def test_cpu_lists_and_masks_mean_the_same():
    from toolkit.bench import parse_cpus

    assert parse_cpus("4-7") == parse_cpus("0xF0") == parse_cpus("f0") == "f0"
    assert parse_cpus("0,2") == "5" and parse_cpus(None) is None


def test_library_entry_points_hold_the_same_ranges(lone_tflite):
    from toolkit.bench import parse_threads
    from toolkit.embedders import load_interpreter
    from toolkit.export import export_model
    from toolkit.init_checkpoint import init_checkpoint
    from toolkit.models.registry import default_spec

    with pytest.raises(InputError, match="1..256"):
        load_interpreter(lone_tflite, num_threads=1_000_000)
    with pytest.raises(InputError, match="1..256"):
        parse_threads([1, 100_000])
    with pytest.raises(InputError, match="outside a face model's 8..1024"):
        default_spec("tiny", input_size=1_000_000)
    with pytest.raises(InputError, match="--num-classes must be in 0..1000000"):
        init_checkpoint(lone_tflite.parent / "c.pt", backbone="tiny", num_classes=1_000_000_000)
    with pytest.raises(InputError, match="--input-size must be in 8..1024"):
        export_model(lone_tflite.parent / "c.pt", lone_tflite.parent / "export", input_size=1_000_000)


def test_a_checkpoint_from_init_checkpoint_at_the_largest_size_is_readable(tmp_path, capsys):
    """The range init-checkpoint accepts is the range every reader accepts (it used to write 1,000,000 px)."""
    from toolkit.checkpoint import read_checkpoint_meta

    code, _, err = run_cli(["init-checkpoint", "--out", tmp_path / "c.pt", "--backbone", "tiny", "--input-size",
                            "1024", "--quiet"], capsys)
    assert code == 0, err
    assert read_checkpoint_meta(tmp_path / "c.pt").spec.input_size == 1024


# ---------------------------------------------------------------------------------------------------------------------
# YAML that expands
# ---------------------------------------------------------------------------------------------------------------------
def _alias_levels(levels: int) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    import time

    config = tmp_path / "bomb.yaml"
    config.write_text(_alias_levels(10))  # 9^10 values once expanded: a MemoryError before
    started = time.perf_counter()
    line = refused(["train", "--config", config], capsys, "expands to more than 100000 values through its aliases")
    assert time.perf_counter() - started < 10 and str(config) in line
    loop = tmp_path / "loop.yaml"
    loop.write_text("epochs: &a [1, *a]\n")
    refused(["train", "--config", loop], capsys, "refers to itself")


def test_a_long_value_is_cut_in_the_message(tmp_path, capsys):
    config = tmp_path / "long.yaml"
    anchors = ", ".join(line.split(": ", 1)[1] for line in _alias_levels(5).splitlines())
    config.write_text(f"epochs: [{anchors}]\n")  # 66,429 strings once expanded, all in one value
    line = refused(["train", "--config", config], capsys, "epochs must be an integer")
    assert len(line) < 400


# ---------------------------------------------------------------------------------------------------------------------
# a disk that fills during conversion
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture
def two_mib_disk(tmp_path):
    """A 2 MiB tmpfs: room enough for the tiny export's up-front free-space check (root only)."""
    yield from mounted_tmpfs(tmp_path / "disk", "2m")


def test_a_disk_filling_during_conversion_is_no_space_left_and_leaves_nothing(tiny_checkpoint, two_mib_disk,
                                                                              capsys, monkeypatch):
    """The converter's own writer (LLVM) called exit(1) on ENOSPC: exit 1 with no message, temps left behind."""
    import toolkit.export.stage

    real_check = toolkit.export.stage.check_free_space

    def check_then_fill(folder, needed, what):
        real_check(folder, needed, what)  # the up-front check passes; then another writer takes the disk
        fd = os.open(two_mib_disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 65536):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)

    monkeypatch.setattr(toolkit.export.stage, "check_free_space", check_then_fill)  # where the export calls it
    out = two_mib_disk / "export"
    refused(["export", tiny_checkpoint, "--out", out, "--quiet"], capsys, f"no space left on {out}")
    assert [p.name for p in two_mib_disk.iterdir()] == ["filler"]  # no export folder, no temp file
