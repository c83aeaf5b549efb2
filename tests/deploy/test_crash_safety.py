"""ftk deploy and --revert survive a crash at every step, and one process at a time changes an app.

The way they fail: each run happens in a forked child whose k-th filesystem step (``os.replace``, ``rename``,
``fsync``, ``link``, ``unlink``, ``mkdir``, ``rmdir``) is hit by a real ``SIGKILL`` (before the step) or a
``KeyboardInterrupt`` (just after it, as Ctrl-C would land), for every k of a complete run. Then the next ftk
command runs, and the app must be, file for file (content and mode, folders included), the app before the deploy
or the app after it, with no temp file or staging folder left anywhere in it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from tests.crash_helpers import file_tree, run_hit_at
from toolkit.deploy import deploy, revert
from toolkit.deploy.journal import JOURNAL, STATE_DIR, UNFINISHED
from toolkit.errors import InputError

pytestmark = pytest.mark.usefixtures("private_state_dir")
ASSETS = "app/src/main/assets"


# ----------------------------------------------------------------------------------------------------------------
# helpers: what `diff -r` sees, and a run hit at its k-th step
# ----------------------------------------------------------------------------------------------------------------
def tree(root: Path, with_state: bool = False) -> dict[str, str]:
    """What `diff -r` compares under root, modes included (``.ftk-deploy/`` only if ``with_state``)."""
    return file_tree(root, skip=() if with_state else (STATE_DIR,))


def leftovers(root: Path) -> list[str]:
    """Temp files and staging folders of ftk anywhere under root, and journals left unfinished."""
    found = [str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".ftk-tmp")]
    for journal in (root / STATE_DIR).glob(f"backup-*/{JOURNAL}"):
        if any(f'"status": "{status}"' in journal.read_text() for status in UNFINISHED):
            found.append(str(journal.relative_to(root)))
    return found


@pytest.fixture
def fresh_app(android_app) -> Path:
    """The fixture app without its assets/ folder: the deploy creates a folder, adds a file, edits two."""
    shutil.rmtree(android_app / ASSETS)
    return android_app


def deploy_action(export: Path, app: Path) -> Callable[[], object]:
    return lambda: deploy(export, app, threshold=0.4, keep_app_preprocessing=True)


def states_of(export: Path, app: Path, scratch: Path) -> tuple[dict, dict]:
    """(tree before, tree after) a clean deploy of ``export`` into a copy of ``app`` at ``scratch``."""
    shutil.copytree(app, scratch, symlinks=True)
    before = tree(scratch)
    deploy_action(export, scratch)()
    after = tree(scratch)
    shutil.rmtree(scratch)
    return before, after


def every_step(app: Path, tmp_path: Path, action_on: Callable[[Path], Callable[[], object]],
               prepare: Callable[[Path], object] = lambda work: None) -> Iterator[tuple[int, Path]]:
    """(k, a fresh copy of ``app``, ``prepare``d) for every step k of a clean run of ``action_on(copy)``."""
    pristine, work = Path(shutil.copytree(app, tmp_path / "pristine", symlinks=True)), tmp_path / "work"
    shutil.copytree(pristine, work, symlinks=True)
    prepare(work)
    outcome, steps = run_hit_at(0, "none", action_on(work))
    assert outcome == "exit 0" and steps >= 10  # the run really has that many steps to be hit at
    for step in range(1, steps + 1):
        shutil.rmtree(work)
        shutil.copytree(pristine, work, symlinks=True)
        prepare(work)  # a deploy is recorded under the app's path: a copy must be deployed, not copied
        yield step, work
    shutil.rmtree(work)


# ----------------------------------------------------------------------------------------------------------------
# kill -9 at every step
# ----------------------------------------------------------------------------------------------------------------
def test_deploy_killed_at_every_step_then_revert_gives_the_app_back(tiny_export, fresh_app, tmp_path):
    before, after = states_of(tiny_export, fresh_app, tmp_path / "scratch")
    rolled_back = 0
    for step, work in every_step(fresh_app, tmp_path, lambda work: deploy_action(tiny_export, work)):
        assert run_hit_at(step, "kill", deploy_action(tiny_export, work))[0] == "killed", step
        try:
            result = revert(work)  # the next command: the interrupted deploy is undone, or the applied one reverted
        except InputError as exc:  # killed before its journal was in place: nothing to revert
            assert "nothing to revert" in str(exc), step
            result = None
        rolled_back += bool(result and result.recovery and "rolled back" in result.recovery)
        assert tree(work) == before and leftovers(work) == [], f"step {step}"
        assert not (work / STATE_DIR).exists() or result and not result.recovery, step
    assert rolled_back > 10  # most kill points left a pending journal that the revert rolled back


def test_deploy_killed_at_every_step_then_deploy_again(tiny_export, android_app, tmp_path):
    """The second deploy finishes the first's business (``.ftk-deploy/`` exists already: another staging path), and
    a revert after it restores the original app, not a half-patched one."""
    assert deploy(tiny_export, android_app, threshold=0.4, keep_app_preprocessing=True).applied
    revert(android_app)  # leaves .ftk-deploy/ with a reverted backup
    before, after = states_of(tiny_export, android_app, tmp_path / "scratch")
    for step, work in every_step(android_app, tmp_path, lambda work: deploy_action(tiny_export, work)):
        assert run_hit_at(step, "kill", deploy_action(tiny_export, work))[0] == "killed", step
        result = deploy_action(tiny_export, work)()
        assert tree(work) == after and leftovers(work) == [], f"step {step}"
        assert not result.recovery or "rolled back" in result.recovery and result.recovery in result.warnings
        revert(work)
        assert tree(work) == before and leftovers(work) == [], f"step {step}"


def test_revert_killed_at_every_step_then_revert_again(tiny_export, fresh_app, tmp_path):
    before, after = states_of(tiny_export, fresh_app, tmp_path / "scratch")
    completed = 0
    for step, work in every_step(fresh_app, tmp_path, lambda work: lambda: revert(work),
                                 prepare=lambda work: deploy_action(tiny_export, work)()):
        assert run_hit_at(step, "kill", lambda: revert(work))[0] == "killed", step
        try:
            result = revert(work)
        except InputError as exc:  # killed after the revert was complete
            assert "nothing to revert" in str(exc), step
            result = None
        completed += bool(result and result.recovery and "completed" in result.recovery)
        assert tree(work) == before and leftovers(work) == [], f"step {step}"
    assert completed > 3


# ----------------------------------------------------------------------------------------------------------------
# Ctrl-C at every step: no recovery needed, the run itself cleans up
# ----------------------------------------------------------------------------------------------------------------
def test_ctrl_c_at_every_step_of_a_deploy_leaves_before_or_after(tiny_export, fresh_app, tmp_path):
    before, after = states_of(tiny_export, fresh_app, tmp_path / "scratch")
    for step, work in every_step(fresh_app, tmp_path, lambda work: deploy_action(tiny_export, work)):
        outcome, _ = run_hit_at(step, "interrupt", deploy_action(tiny_export, work))
        assert outcome in ("exit 130", "exit 0"), (step, outcome)
        state = tree(work)
        assert state in (before, after) and leftovers(work) == [], f"step {step}"
        if state == before:  # the added asset (renamed, then interrupted) went with the rest
            assert not (work / STATE_DIR).exists(), f"step {step}"


# ----------------------------------------------------------------------------------------------------------------
# the same through the real CLI: a killed `ftk deploy`, then `ftk deploy --revert` says what it did
# ----------------------------------------------------------------------------------------------------------------
def test_cli_kill_during_renames_then_revert_says_rolled_back(tiny_export, fresh_app, tmp_path):
    before = tree(fresh_app)
    driver = ("import os, signal, sys\n"
              "real, count = os.replace, [0]\n"
              "def replace(src, dst):\n"
              "    real(src, dst)\n"
              f"    count[0] += str(dst).startswith({str(fresh_app)!r}) and '.ftk-deploy' not in str(dst)\n"
              "    if count[0] == 2: os.kill(os.getpid(), signal.SIGKILL)\n"  # after 2 of the 3 renames in the app
              "os.replace = replace\n"
              "from toolkit.cli import main\n"
              "main(sys.argv[1:])\n")
    killed = subprocess.run([sys.executable, "-c", driver, "deploy", str(tiny_export), "--app", str(fresh_app),
                             "--threshold", "0.4", "--keep-app-preprocessing"], capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert tree(fresh_app) != before  # half-patched, as a kill leaves it
    back = subprocess.run([sys.executable, "-m", "toolkit.cli", "deploy", "--revert", "--app", str(fresh_app)],
                          capture_output=True, text=True, timeout=300)
    assert back.returncode == 0, back.stderr
    assert "was rolled back" in back.stderr
    assert tree(fresh_app) == before and leftovers(fresh_app) == [] and not (fresh_app / STATE_DIR).exists()


# ----------------------------------------------------------------------------------------------------------------
# one process at a time
# ----------------------------------------------------------------------------------------------------------------
def test_second_deploy_into_the_same_app_exits_2_naming_the_first(tiny_export, android_app, tmp_path):
    """Two real `ftk deploy` at once: the first is held at its first rename (it holds the app); the second exits 2
    naming it and changes nothing, a revert waits with FTK_LOCK_WAIT; the first ends normally, deployed once."""
    go_on = tmp_path / "go-on"
    slowed = ("import os, sys, time\n"
              "real, seen = os.replace, []\n"
              "def replace(*a, **k):\n"
              "    if not seen:\n"
              "        seen.append(1)\n"
              "        print('renaming', flush=True)\n"
              "        while not os.path.exists(os.environ['GO_ON']): time.sleep(0.05)\n"
              "    return real(*a, **k)\n"
              "os.replace = replace\n"
              "from toolkit.cli import main\n"
              "main(sys.argv[1:])\n")
    args = ["deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4"]
    first = subprocess.Popen([sys.executable, "-c", slowed, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "GO_ON": str(go_on)})
    try:
        assert first.stdout.readline().strip() == "renaming"
        before = tree(android_app)
        second = subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True,
                                timeout=300)
        assert second.returncode == 2, second.stderr
        line = second.stderr.strip().splitlines()
        assert len(line) == 1 and f"is in use by pid {first.pid}: ftk deploy {tiny_export}" in line[0], line
        assert tree(android_app) == before
        waited = subprocess.run([sys.executable, "-m", "toolkit.cli", "deploy", "--revert", "--app",
                                 str(android_app)], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "FTK_LOCK_WAIT": "1"})
        assert waited.returncode == 2 and "waiting up to 1 s" in waited.stderr and "(waited 1 s)" in waited.stderr
        go_on.touch()
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        first.kill()
        first.wait()
    assert len(list((android_app / STATE_DIR).glob("backup-*"))) == 1  # deployed once
    started = time.monotonic()
    again = subprocess.run([sys.executable, "-m", "toolkit.cli", "deploy", "--revert", "--app", str(android_app)],
                           capture_output=True, text=True, timeout=300, env={**os.environ, "FTK_LOCK_WAIT": "60"})
    assert again.returncode == 0, again.stderr  # the lock went with its holder
    assert time.monotonic() - started < 60


def test_a_killed_holder_leaves_no_lock(android_app):
    holder = ("import sys, time\n"
              "from toolkit.deploy.transaction import app_lock\n"
              "with app_lock(sys.argv[1]):\n"
              "    print('held', flush=True)\n"
              "    time.sleep(60)\n")
    first = subprocess.Popen([sys.executable, "-c", holder, str(android_app)], stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "held"
    with pytest.raises(InputError, match=f"in use by pid {first.pid}"):
        revert(android_app)
    first.send_signal(signal.SIGKILL)
    first.wait()
    with pytest.raises(InputError, match="nothing to revert"):  # the lock is free: revert gets to its own check
        revert(android_app)


# ----------------------------------------------------------------------------------------------------------------
# a full disk, a read-only app, a planted journal
# ----------------------------------------------------------------------------------------------------------------
def test_disk_full_at_every_fsync_rolls_back_with_one_line(tiny_export, fresh_app, tmp_path, monkeypatch):
    """ENOSPC reported by fsync (as a full disk does with delayed allocation) at each durable step in turn."""
    import errno

    before = tree(fresh_app)
    pristine = Path(shutil.copytree(fresh_app, tmp_path / "pristine", symlinks=True))
    real_fsync, calls = os.fsync, [0, 0]

    def fsync(fd):
        calls[0] += 1
        if calls[0] == calls[1]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    deploy_action(tiny_export, fresh_app)()
    fsyncs = calls[0]
    assert fsyncs >= 10
    for step in range(1, fsyncs + 1):
        work = Path(shutil.copytree(pristine, tmp_path / "work", symlinks=True))
        calls[:] = [0, step]
        with pytest.raises(InputError, match="no space left on") as excinfo:
            deploy_action(tiny_export, work)()
        assert "\n" not in str(excinfo.value)
        assert tree(work) == before and leftovers(work) == [] and not (work / STATE_DIR).exists(), f"fsync {step}"
        shutil.rmtree(work)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_real_tiny_filesystem_full_rolls_back(tiny_export, fresh_app, tmp_path):
    """A real full disk: a tmpfs of a few KiB free, mounted in a private mount namespace (gone when it exits)."""
    mount, out = tmp_path / "mnt", tmp_path / "out"
    mount.mkdir()
    out.mkdir()
    before, refused = tree(fresh_app), []
    for free_kib in (4, 8, 16, 24, 32, 40, 56):
        script = (f"mount -t tmpfs -o size=1m tmpfs {mount} || exit 77\n"
                  f"cp -a {fresh_app} {mount}/app\n"
                  f"used=$(du -sk {mount} | cut -f1)\n"
                  f"dd if=/dev/zero of={mount}/fill bs=1k count=$((1024 - used - {free_kib})) 2>/dev/null\n"
                  f"{sys.executable} -m toolkit.cli deploy {tiny_export} --app {mount}/app --threshold 0.4 "
                  f"--keep-app-preprocessing >/dev/null 2>{out}/stderr; echo $? > {out}/rc\n"
                  f"rm -rf {out}/app; cp -a {mount}/app {out}/app\n")
        run = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
        if run.returncode == 77 or "unshare failed" in run.stderr:
            pytest.skip(f"cannot mount a tmpfs here: {run.stderr.strip()}")
        rc, stderr = int((out / "rc").read_text()), (out / "stderr").read_text()
        if rc == 0:  # enough room: it deployed
            assert leftovers(out / "app") == [], free_kib
            continue
        assert rc == 2 and f"no space left on {mount}/app" in stderr, (free_kib, stderr)
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert tree(out / "app") == before and leftovers(out / "app") == [], free_kib
        assert not (out / "app" / STATE_DIR).exists(), free_kib
        refused.append(free_kib)
    assert refused[:2] == [4, 8], refused  # the deploy needs ~20 KiB: the smallest disks were really full


def test_read_only_app_folder_gets_no_state_folder(tiny_export, android_app):
    """chmod 555 on the app: refused in the pre-flight, exit 2, nothing written (root included, whose access()
    says yes: the mode bits decide)."""
    before = tree(android_app, with_state=True)
    android_app.chmod(0o555)
    try:
        out = subprocess.run([sys.executable, "-m", "toolkit.cli", "deploy", str(tiny_export), "--app",
                              str(android_app), "--threshold", "0.4"], capture_output=True, text=True, timeout=300)
    finally:
        android_app.chmod(0o755)
    assert out.returncode == 2 and "is not writable" in out.stderr and "nothing was changed" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert tree(android_app, with_state=True) == before and not (android_app / STATE_DIR).exists()


def test_planted_future_journal_does_not_block_the_genuine_revert(tiny_export, fresh_app, tmp_path):
    import json

    before = tree(fresh_app)
    deploy_action(tiny_export, fresh_app)()
    planted = fresh_app / STATE_DIR / "backup-29990101-000000"
    planted.mkdir()
    (planted / JOURNAL).write_text(json.dumps({"status": "applied", "files": [
        {"path": "build.gradle.kts", "existed": False, "backup": None, "sha256_before": None,
         "sha256_after": "0" * 64}]}))
    future = time.time() + 10 * 365 * 86400
    os.utime(planted / JOURNAL, (future, future))
    for status in ("pending", "reverting"):  # an unfinished one: recovery must not act on it either
        fake = fresh_app / STATE_DIR / f"backup-29990101-00000{len(status)}"
        fake.mkdir()
        (fake / JOURNAL).write_text((planted / JOURNAL).read_text().replace("applied", status))
    back = subprocess.run([sys.executable, "-m", "toolkit.cli", "deploy", "--revert", "--app", str(fresh_app)],
                          capture_output=True, text=True, timeout=300)
    assert back.returncode == 0, back.stderr
    assert "ignoring backup-29990101-000000" in back.stderr
    assert tree(fresh_app) == before and (fresh_app / "build.gradle.kts").exists()

    # Alone (the genuine one reverted), the planted journal is refused, and the hint names that folder only.
    refused = subprocess.run([sys.executable, "-m", "toolkit.cli", "deploy", "--revert", "--app", str(fresh_app)],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "not a journal ftk deploy recorded" in refused.stderr
    assert f"delete {STATE_DIR}/backup-29990101-000000/ (that backup folder only)" in refused.stderr
    assert f"delete {STATE_DIR}/ " not in refused.stderr and f"delete {STATE_DIR}/)" not in refused.stderr
