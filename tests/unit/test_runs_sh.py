"""train/runs.sh as a user runs it: the venv's interpreter (never a bare `python`), a second run that resumes or
starts a fresh folder instead of failing, and one summary under torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_train import _closed_loopback_port, synthetic_csv  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runs_env(tmp_path, synthetic_csv):  # noqa: F811
    """A tiny config outside train/configs/, the faces CSV already made (no prepare), and a `python` on PATH that
    fails loudly: the script must use FTK_PYTHON (the venv's interpreter), not whatever `python` is."""
    trap = tmp_path / "trap"
    trap.mkdir()
    (trap / "python").write_text("#!/bin/sh\necho 'bare python called' >&2\nexit 97\n")
    (trap / "python").chmod(0o755)
    config = tmp_path / "tiny_runs.yaml"
    config.write_text(f"backbone: tiny\nepochs: 1\nbatch_size: 8\nlr: 0.01\ndevice: cpu\nnum_workers: 0\n"
                      f"data: {{faces_csv: {synthetic_csv}}}\n")
    env = {**os.environ, "PATH": f"{trap}{os.pathsep}{os.environ['PATH']}", "FTK_PYTHON": sys.executable,
           "FTK_RUNS": str(tmp_path / "runs"), "FTK_FACES": str(synthetic_csv), "FTK_TRAIN_ARGS": "--quiet",
           "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return config, env


def run_script(config: Path, env: dict, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "train" / "runs.sh"), str(config)], capture_output=True, text=True,
                          timeout=600, env={**env, **extra}, cwd="/")


def test_a_second_run_resumes_and_new_starts_a_fresh_folder(runs_env, tmp_path):
    config, env = runs_env
    first = run_script(config, env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "bare python called" not in first.stderr
    assert first.stdout.count("trained 1 epoch") == 1
    run_dir = tmp_path / "runs" / "tiny_runs"
    assert (run_dir / "last.pt").is_file()

    again = run_script(config, env)  # used to fail: the run folder exists
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"--out {run_dir} --resume" in again.stdout and "trained 1 epoch" in again.stdout

    fresh = run_script(config, env, FTK_RUN="new")
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2 and folders[0] == "tiny_runs" and folders[1].startswith("tiny_runs-"), folders

    bad = run_script(config, env, FTK_RUN="again")
    assert bad.returncode == 2 and "FTK_RUN must be resume, new or overwrite" in bad.stderr


def test_no_interpreter_is_a_clear_error(runs_env, tmp_path):
    config, env = runs_env
    out = run_script(config, env, FTK_PYTHON=str(tmp_path / "nowhere" / "python"))
    assert out.returncode == 2 and "run scripts/setup.sh, or set FTK_PYTHON" in out.stderr


@pytest.mark.slow
def test_torchrun_prints_one_summary(runs_env):
    config, env = runs_env
    out = run_script(config, env, TORCHRUN_NPROC="2", PET_MASTER_PORT=str(_closed_loopback_port()),
                     FTK_RUN="overwrite")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "bare python called" not in out.stderr
    assert out.stdout.count("trained 1 epoch") == 1, out.stdout  # rank 1 trains too, silently
    assert "2 processes" in out.stdout
