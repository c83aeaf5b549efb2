"""One process at a time per run folder: a second `ftk pipeline --out SAME` exits 2 naming the first, writing
nothing, or waits with FTK_LOCK_WAIT; the lock lives in ftk's state folder and dies with its holder."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from toolkit.errors import InputError
from toolkit.locks import exclusive

HOLDER = ("import sys, time\n"
          "from toolkit.locks import exclusive\n"
          "with exclusive(sys.argv[1], sys.argv[2]):\n"
          "    print('held', flush=True)\n"
          "    time.sleep(120)\n")


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FTK_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def holder(tmp_path):
    """Start a process holding a folder's lock as a running pipeline does; yield a function that starts it."""
    started = []

    def hold(folder: Path, what: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), what], stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield hold
    for proc in started:
        proc.kill()
        proc.wait()


def minimal_config(tmp_path: Path) -> Path:
    """A pipeline config whose inputs exist (the run stops at the lock, before any stage)."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "pairs.txt").write_text("")
    config = tmp_path / "pipeline.yaml"
    config.write_text("backbone: tiny\nprepare:\n  images: photos\nevaluate:\n  pairs: pairs.txt\n")
    return config


def test_second_pipeline_into_the_same_run_folder_exits_2(tmp_path, holder):
    run = tmp_path / "run"
    run.mkdir()
    first = holder(run, "the run folder")
    result = subprocess.run([sys.executable, "-m", "toolkit.cli", "pipeline", str(minimal_config(tmp_path)), "--out",
                             str(run)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"the run folder {run} is in use by pid {first.pid}" in lines[0], result.stderr
    assert list(run.iterdir()) == []  # no stage started


def test_waiting_is_bounded_and_said_once(tmp_path, holder, caplog, monkeypatch):
    folder = tmp_path / "out"
    first = holder(folder, "the export folder")  # a folder not created yet has a lock too
    monkeypatch.setenv("FTK_LOCK_WAIT", "0.5")
    started = time.monotonic()
    with pytest.raises(InputError, match=rf"in use by pid {first.pid}: .* \(waited 0.5 s\)"):
        with exclusive(folder, "the export folder"):
            pass
    assert 0.4 < time.monotonic() - started < 10
    assert sum("waiting up to 0.5 s" in r.getMessage() for r in caplog.records) == 1
    first.send_signal(signal.SIGKILL)
    first.wait()
    with exclusive(folder, "the export folder"):  # free as soon as the holder is gone, however it died
        with exclusive(folder, "the export folder"):  # re-entrant in one process
            pass


def test_a_bad_wait_value_is_an_input_error(tmp_path, holder, monkeypatch):
    holder(tmp_path, "the run folder")
    monkeypatch.setenv("FTK_LOCK_WAIT", "soon")
    with pytest.raises(InputError, match="FTK_LOCK_WAIT='soon' is not a number"):
        with exclusive(tmp_path, "the run folder"):
            pass


def test_second_export_into_the_same_folder_exits_2(tmp_path, holder, ref_ckpt):
    out = tmp_path / "export"
    first = holder(out, "the export folder")
    result = subprocess.run([sys.executable, "-m", "toolkit.cli", "export", str(ref_ckpt), "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr
    assert f"the export folder {out} is in use by pid {first.pid}" in result.stderr.strip().splitlines()[-1]
    assert not out.exists()  # nothing written
