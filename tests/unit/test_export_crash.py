"""An export's outputs are installed as one step: a real SIGKILL or a Ctrl-C at any filesystem step of the install
leaves the folder holding the old export or the new one, whole, once the next run has cleaned up (a Ctrl-C needs
no next run); files of the user's beside them are kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.crash_helpers import file_tree, run_hit_at
from toolkit.install import finish_interrupted, staged_install

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
