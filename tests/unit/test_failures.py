"""Every failure is a clean one: bad input is one `error:` line and exit 2, a bug is exit 3 (never 1), a full disk
or a failed run leaves nothing half-written, and outputs are what a user expects (0644, no machine paths).

The real CLI runs in a subprocess wherever the exit code matters; full-disk tests mount a small tmpfs (root only).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import mounted_tmpfs
from toolkit.errors import InputError

TIMEOUT = 300


def ftk(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd, env={**os.environ, **(env or {})})


def assert_one_line_error(result: subprocess.CompletedProcess, match: str, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs: a disk that is (nearly) full for anything ftk writes."""
    yield from mounted_tmpfs(tmp_path / "small_disk", "256k")


@pytest.fixture
def people(tmp_path) -> Path:
    """Two person folders of small PNGs (enough for every check that comes before face detection)."""
    root = tmp_path / "people"
    rng = np.random.default_rng(0)
    for name in ("Ann_A", "Bob_B"):
        (root / name).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(root / name / f"{k}.png")
    return root


# ----------------------------------------------------------------------------------------------------------------
# item 8: exit codes and one-line errors
# ----------------------------------------------------------------------------------------------------------------
CRASHING_FTK = textwrap.dedent("""
    import click, sys
    from toolkit import cli

    @click.command("crash")
    def crash():
        raise ZeroDivisionError("a bug in ftk")

    cli.COMMANDS["crash"] = ("__main__:crash", "raises an unexpected exception")
    cli.main(sys.argv[1:])
""")


def test_unexpected_exception_exits_3_with_the_traceback_in_a_log(tmp_path):
    """The real ftk main() with one extra command whose body is a bug (nothing else is replaced)."""
    env = {**os.environ, "FTK_STATE_DIR": str(tmp_path / "state")}
    run = lambda *a: subprocess.run([sys.executable, "-c", CRASHING_FTK, *a], capture_output=True, text=True,
                                    timeout=TIMEOUT, env=env)
    quiet = run("crash")
    assert quiet.returncode == 3, quiet.stderr
    lines = quiet.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: ZeroDivisionError: a bug in ftk"), quiet.stderr
    assert "please report" in lines[0]
    logs = list((tmp_path / "state").glob("crash-*.log"))
    assert len(logs) == 1 and "Traceback" in logs[0].read_text() and str(logs[0]) in lines[0]

    verbose = run("-v", "crash")
    assert verbose.returncode == 3 and "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1].startswith("internal error: ")


@pytest.mark.parametrize("args, match", [
    (["prepare", "photos", "--out", "f.csv", "--batch-size", "0"], "--batch-size"),
    (["evaluate", "m.pt", "--pairs", "p.txt", "--batch-size", "0"], "--batch-size"),
    (["evaluate", "m.tflite", "--pairs", "p.txt", "--input-size", "100000"], "--input-size"),
    (["evaluate", "m.tflite", "--pairs", "p.txt", "--threads", "0"], "--threads"),
    (["parity-check", "m.tflite", "--checkpoint", "c.pt", "--threads", "0"], "--threads"),
    (["prepare"], "Missing argument"),
    (["prepare", "photos", "--out", "f.csv", "--no-such-option"], "--no-such-option"),
    (["no-such-command"], "no-such-command"),
])
def test_usage_errors_are_one_line_exit_2(tmp_path, args, match):
    line = assert_one_line_error(ftk(*args, cwd=tmp_path), match)
    assert "--help" in line


def test_checkpoint_with_absurd_input_size_is_refused(tiny_checkpoint, tmp_path):
    import torch

    payload = torch.load(tiny_checkpoint, weights_only=True)
    meta = json.loads(payload["metadata_json"])
    meta["spec"]["input_size"] = 100000
    payload["metadata_json"] = json.dumps(meta)
    torch.save(payload, tmp_path / "huge.pt")
    (tmp_path / "pairs.txt").write_text("1 1\nA 1 2\n")
    assert_one_line_error(ftk("evaluate", str(tmp_path / "huge.pt"), "--pairs", str(tmp_path / "pairs.txt")),
                          "input size is 100000")


def test_pickle_payload_refusal_says_why(tmp_path):
    import argparse

    import torch

    torch.save({"ftk_format": "x", "obj": argparse.Namespace(a=1)}, tmp_path / "pickled.pt")
    (tmp_path / "pairs.txt").write_text("1 1\nA 1 2\n")
    line = assert_one_line_error(ftk("evaluate", str(tmp_path / "pickled.pt"), "--pairs", str(tmp_path / "pairs.txt")),
                                 "contains Python objects; refused for safety")
    assert "weights_only" not in line and "Re-running" not in line


def test_duplicate_yaml_key_is_refused(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("backbone: tiny\nepochs: 3\ndata: {faces_csv: faces.csv}\nepochs: 30\n")
    assert_one_line_error(ftk("train", "--config", str(config)), "duplicate key 'epochs'")


def test_yaml_merge_key_override_is_not_a_duplicate():
    import yaml

    from toolkit.config import _strict_loader

    text = "base: &b {lr: 1, epochs: 2}\nrun:\n  <<: *b\n  epochs: 5\n"
    assert yaml.load(text, Loader=_strict_loader())["run"] == {"lr": 1, "epochs": 5}


# ----------------------------------------------------------------------------------------------------------------
# items 5 and 9: a full disk or a failed run leaves nothing behind
# ----------------------------------------------------------------------------------------------------------------
def test_full_disk_atomic_write_is_an_input_error_and_leaves_no_temp(small_disk):
    from toolkit.io import write_bytes_atomic

    with pytest.raises(InputError, match="no space left on"):
        write_bytes_atomic(small_disk / "out" / "big.bin", b"x" * (1 << 20))
    assert not list(small_disk.rglob("*.tmp"))


def test_full_disk_atomic_dir_removes_its_temp_folder(small_disk):
    from toolkit.io import atomic_dir

    with pytest.raises(InputError, match="no space left on"):
        with atomic_dir(small_disk / "export") as tmp:
            (tmp / "model.tflite").write_bytes(b"x" * (1 << 20))
    assert list(small_disk.iterdir()) == []


def test_prepare_on_a_full_disk_says_so_and_writes_nothing(people, small_disk):
    out = small_disk / "data" / "faces.csv"
    assert_one_line_error(ftk("prepare", str(people), "--out", str(out)), f"no space left on {out.parent}")
    assert list(small_disk.iterdir()) == []


def test_prepare_bad_holdout_fails_before_detection_and_leaves_no_folder(people, tmp_path):
    out = tmp_path / "new" / "sub" / "faces.csv"
    assert_one_line_error(ftk("prepare", str(people), "--out", str(out), "--holdout-identities", "abc"),
                          "--holdout-identities")
    assert not (tmp_path / "new").exists()


@pytest.fixture
def synthetic_csv(tmp_path) -> Path:
    """4 people 'a'..'d' (the tiny checkpoint's classes), 6 whole-image faces each: 4 train, 2 test."""
    from toolkit.data.dataset import FaceRecord, write_faces_csv

    root = tmp_path / "faces"
    rng = np.random.default_rng(1)
    records = []
    for label, name in enumerate("abcd"):
        (root / name).mkdir(parents=True)
        for k in range(6):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / name / f"{k}.png")
            records.append(FaceRecord(f"{name}/{k}.png", name, (0, 0, 32, 32), "test" if k < 2 else "train", label))
    write_faces_csv(root / "faces.csv", records, root, list("abcd"))
    return root / "faces.csv"


def _train_config(tmp_path: Path, csv: Path, out: Path, extra: str = "") -> Path:
    config = tmp_path / "train.yaml"
    config.write_text(f"backbone: tiny\nepochs: 1\nbatch_size: 8\ndevice: cpu\ndata: {{faces_csv: {csv}, "
                      f"val_split: test}}\nout_dir: {out}\n{extra}")
    return config


def test_train_on_a_full_disk_says_so_and_leaves_no_run_folder(synthetic_csv, small_disk, tmp_path):
    run = small_disk / "run"
    config = _train_config(tmp_path, synthetic_csv, run)
    assert_one_line_error(ftk("train", "--config", str(config), "--no-progress"), f"no space left on {run}")
    assert list(small_disk.iterdir()) == []


def test_train_with_unusable_weights_fails_before_cropping(synthetic_csv, tmp_path):
    import torch

    torch.save({"not.a.layer": torch.zeros(3)}, tmp_path / "wrong.pt")
    run = tmp_path / "run"
    config = _train_config(tmp_path, synthetic_csv, run)
    assert_one_line_error(ftk("train", "--config", str(config), "--weights", str(tmp_path / "wrong.pt")),
                          "do not fit")
    assert not run.exists()  # no cache/ from a cropping pass that could never be used


def test_evaluate_failure_leaves_no_empty_report_folder(tiny_checkpoint, synthetic_csv, tmp_path):
    no_test = synthetic_csv.with_name("no_test.csv")
    lines = synthetic_csv.read_text().splitlines()
    no_test.write_text("\n".join([lines[0]] + [line.replace(",test,", ",train,") for line in lines[1:]]) + "\n")
    out = tmp_path / "reports" / "tiny"
    assert_one_line_error(ftk("evaluate", str(tiny_checkpoint), "--csv", str(no_test), "--out", str(out)),
                          "no 'test' rows")
    assert not (tmp_path / "reports").exists()


# ----------------------------------------------------------------------------------------------------------------
# item 10: a read-only model folder
# ----------------------------------------------------------------------------------------------------------------
def test_evaluate_writes_to_the_current_folder_never_beside_the_model(tiny_checkpoint, synthetic_csv, small_disk,
                                                                       tmp_path):
    """The model's folder (read-only here, as a shared model store) is not where the user asked for output."""
    from toolkit.reports import find_eval_report

    model = small_disk / "tiny.pt"
    shutil.copy(tiny_checkpoint, model)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    work = tmp_path / "work"
    work.mkdir()
    result = ftk("evaluate", str(model), "--csv", str(synthetic_csv), cwd=work)
    assert result.returncode == 0, result.stderr
    assert "not writable" not in result.stderr and (work / "tiny.eval" / "report.json").is_file()
    cwd = os.getcwd()
    try:
        os.chdir(work)
        assert find_eval_report(model) is not None  # deploy / compare find it there too
    finally:
        os.chdir(cwd)


# ----------------------------------------------------------------------------------------------------------------
# papercuts: permissions, machine paths, duplicate images
# ----------------------------------------------------------------------------------------------------------------
def test_outputs_follow_the_umask(tmp_path):
    from toolkit.io import write_json_atomic

    write_json_atomic(tmp_path / "report.json", {"a": 1})
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_labels_json_has_no_machine_path_and_survives_a_move(synthetic_csv, tmp_path):
    from toolkit.data.dataset import image_root_for

    labels = json.loads(synthetic_csv.with_name("labels.json").read_text())
    assert not Path(labels["image_root"]).is_absolute() and str(tmp_path) not in json.dumps(labels)
    moved = Path(shutil.move(str(synthetic_csv.parent), str(tmp_path / "elsewhere")))
    assert (image_root_for(moved / "faces.csv") / "a" / "0.png").is_file()


def test_byte_identical_images_share_one_split(tmp_path):
    from toolkit.prepare import assign_splits, split_counts_for

    rng = np.random.default_rng(2)
    paths = []
    for k in range(10):
        path = tmp_path / f"{k}.png"
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    for k in range(10):  # a byte-identical copy of every image under another name
        copy = tmp_path / f"copy_{k}.png"
        shutil.copy(paths[k], copy)
        paths.append(copy)
    for seed in range(20):
        splits = assign_splits(paths, (0.5, 0.25, 0.25), f"{seed}:person")
        assert all(splits[k] == splits[k + 10] for k in range(10)), splits
        assert splits.count("test") == 2 * split_counts_for(10, (0.5, 0.25, 0.25))[2]  # counted per unique image


def test_labels_json_finds_photos_outside_after_the_csv_moves_deeper(tmp_path):
    """A run's faces.csv names photos outside the run: moving the run to another depth keeps them found."""
    from toolkit.data.dataset import FaceRecord, image_root_for, write_faces_csv

    photos = tmp_path / "photos"
    (photos / "a").mkdir(parents=True)
    (photos / "a" / "0.png").write_bytes(b"")
    csv = tmp_path / "runs" / "x" / "prepare" / "faces.csv"
    csv.parent.mkdir(parents=True)
    write_faces_csv(csv, [FaceRecord("a/0.png", "a", (0.0, 0.0, 4.0, 4.0), "train", 0)], photos, ["a"])
    labels = json.loads(csv.with_name("labels.json").read_text())
    assert labels["image_root"] == "../../../photos" and labels["image_root_absolute"] == str(photos.resolve())
    deeper = tmp_path / "archive" / "2026" / "x"
    deeper.parent.mkdir(parents=True)
    shutil.move(str(csv.parent.parent), str(deeper))
    assert image_root_for(deeper / "prepare" / "faces.csv") == photos.resolve()
