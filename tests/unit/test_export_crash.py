"""An export's outputs are installed as one step: a real SIGKILL or a Ctrl-C at any filesystem step of the install
leaves the folder holding the old export or the new one, whole, once the next run has cleaned up (a Ctrl-C needs
no next run); files of the user's beside them are kept."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.crash_helpers import file_tree, run_hit_at
from toolkit.install import finish_interrupted, staged_install
from toolkit.io import sha256_file

PREFIX = ".ftk-export."
OUTPUTS = ["model_float32.tflite", "model_int8.tflite", "parity_faces.npz", "manifest.json"]


def old_export(folder: Path) -> Path:
    """An earlier export (two models and a manifest) with a user's evaluation report beside it, and the temp file
    an older ftk left when it was killed writing the manifest."""
    folder.mkdir()
    (folder / "model_float32.tflite").write_bytes(b"old float32")
    (folder / "model_int8.tflite").write_bytes(b"old int8")
    (folder / "manifest.json").write_text('{"old": true}')
    (folder / "model_int8.tflite.eval").mkdir()
    (folder / "model_int8.tflite.eval" / "report.json").write_text("{}")
    return folder


def new_export(dest: Path) -> None:
    """A float32-only export over the old one: its int8 model goes (the new manifest does not list it)."""
    with staged_install(dest, PREFIX, last="manifest.json") as staging:
        (staging.folder / "model_float32.tflite").write_bytes(b"new float32" * 100)
        (staging.folder / "parity_faces.npz").write_bytes(b"faces")
        (staging.folder / "manifest.json").write_text('{"new": true}')
        staging.remove.append("model_int8.tflite")


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def states(tmp_path) -> tuple[Path, dict, dict]:
    """(a pristine old export folder, its tree, the tree after a clean new export over it)."""
    pristine = old_export(tmp_path / "pristine")
    scratch = Path(shutil.copytree(pristine, tmp_path / "scratch"))
    new_export(scratch)
    after = file_tree(scratch)
    shutil.rmtree(scratch)
    return pristine, file_tree(pristine), after


def every_step(pristine: Path, work: Path):
    shutil.copytree(pristine, work)
    outcome, steps = run_hit_at(0, "none", lambda: new_export(work))
    assert outcome == "exit 0" and steps >= 8
    for step in range(1, steps + 1):
        shutil.rmtree(work)
        shutil.copytree(pristine, work)
        yield step


def test_export_install_killed_at_every_step_ends_old_or_new(states, tmp_path):
    pristine, before, after = states
    dest, seen = tmp_path / "out", set()
    for step in every_step(pristine, dest):
        assert run_hit_at(step, "kill", lambda: new_export(dest))[0] == "killed", step
        finish_interrupted(dest, PREFIX, OUTPUTS)  # what the next `ftk export` into this folder does first
        state = file_tree(dest)
        assert state in (before, after) and leftovers(dest) == [], f"step {step}"
        assert (dest / "model_int8.tflite.eval" / "report.json").is_file()
        seen.add("after" if state == after else "before")
    assert seen == {"before", "after"}  # kill points on both sides of the commit


def test_export_install_interrupted_at_every_step_ends_old_or_new(states, tmp_path):
    pristine, before, after = states
    dest = tmp_path / "out"
    for step in every_step(pristine, dest):
        outcome, _ = run_hit_at(step, "interrupt", lambda: new_export(dest))
        assert outcome in ("exit 130", "exit 0"), (step, outcome)
        assert file_tree(dest) in (before, after) and leftovers(dest) == [], f"step {step}"


def test_an_older_ftk_s_temps_are_removed_and_a_planted_plan_moves_nothing_out(tmp_path):
    dest = old_export(tmp_path / "out")
    (tmp_path / "victim").write_text("kept")
    (dest / ".manifest.json.k2j3h4.tmp").write_text("half a manifest")
    (dest / ".ftk-export.abc123.tmp").mkdir()  # a killed run's work folder, uncommitted
    (dest / ".ftk-export.abc123.tmp" / "model_int8.tflite").write_bytes(b"half")
    planted = dest / ".ftk-export.zzz.tmp"
    planted.mkdir()
    (planted / "install.json").write_text('{"install": ["../../escape"], "remove": ["../victim"]}')
    before = file_tree(dest)
    done = finish_interrupted(dest, PREFIX, OUTPUTS)
    assert len(done) == 3 and leftovers(dest) == []
    assert file_tree(dest) == {k: v for k, v in before.items() if not k.startswith(".")}
    assert not (tmp_path / "escape").exists() and (tmp_path / "victim").read_text() == "kept"


# ----------------------------------------------------------------------------------------------------------------
# the real `ftk export`, killed, then run again
# ----------------------------------------------------------------------------------------------------------------
KILL_AFTER_RENAME = ("import os, signal, sys\n"
                     "real = os.replace\n"
                     "def replace(src, dst, **kw):\n"
                     "    real(src, dst, **kw)\n"
                     "    if str(dst).endswith(os.environ['KILL_AFTER_RENAME_TO']): os.kill(os.getpid(), signal.SIGKILL)\n"
                     "os.replace = replace\n"
                     "from toolkit.cli import main\n"
                     "main(sys.argv[1:])\n")


def ftk(*args: str, driver: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    head = ["-c", driver] if driver else ["-m", "toolkit.cli"]
    return subprocess.run([sys.executable, *head, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def work_folders(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(PREFIX))


def manifest_matches_models(out: Path) -> bool:
    manifest = json.loads((out / "manifest.json").read_text())
    return all(sha256_file(out / name) == entry["sha256"] for name, entry in manifest["artifacts"].items())


def test_killed_ftk_exports_are_cleaned_or_finished_by_the_next_one(ref_ckpt, tmp_path):
    """Run 1 is killed before its install committed (as the manifest lands in the work folder); run 2 removes that
    work folder, needs no --overwrite, and is killed after the first rename of its install; run 3 completes that
    install (then needs --overwrite, as after any export). No temp is left, and the manifest matches the models."""
    out = tmp_path / "out"
    out.mkdir()
    first = ftk("export", str(ref_ckpt), "--out", str(out), driver=KILL_AFTER_RENAME,
                env={"KILL_AFTER_RENAME_TO": "/manifest.json"})
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    (uncommitted,) = work_folders(out)

    second = ftk("export", str(ref_ckpt), "--out", str(out), driver=KILL_AFTER_RENAME,
                 env={"KILL_AFTER_RENAME_TO": str(out / "model_float32.tflite")})
    assert second.returncode == -signal.SIGKILL, second.stderr[-2000:]
    assert f"removed {uncommitted}, left by an interrupted run" in second.stderr
    (committed,) = work_folders(out)
    assert committed != uncommitted and (out / "model_float32.tflite").is_file()
    assert not (out / "manifest.json").exists()  # what a kill here used to leave for good

    third = ftk("export", str(ref_ckpt), "--out", str(out))
    assert f"completed the install of an interrupted run ({committed})" in third.stderr, third.stderr
    assert third.returncode == 2 and "already exists" in third.stderr
    assert leftovers(out) == [] and manifest_matches_models(out)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model_float32.tflite"]
