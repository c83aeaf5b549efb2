"""A hostile or damaged app checkout cannot make ftk deploy / --revert write, replace or delete outside it.

Real files, real symbolic links, the real CLI in a subprocess where the exit code and the error line matter. The
crafted journals below are what someone shipping an app checkout could put in ``.ftk-deploy/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from toolkit.deploy.transaction import JOURNAL, STATE_DIR, apply_changes, binary_change, text_change
from toolkit.errors import InputError

VICTIM_TEXT = "a file outside the app that must survive\n"
pytestmark = pytest.mark.usefixtures("private_state_dir")


@pytest.fixture
def app(tmp_path) -> Path:
    root = tmp_path / "app"
    (root / "src").mkdir(parents=True)
    (root / "src" / "Scanner.kt").write_text("val inputSize = 160\n")
    (root / "assets").mkdir()  # empty before the deploy, as in a fresh app
    return root


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "outside" / "victim.txt"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    return path


def ftk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True, timeout=300,
                          env=os.environ.copy())


def tree(root: Path) -> dict[str, str]:
    """Every file (sha256) and folder under root, the deploy state folder excluded: what `diff -r` compares."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != STATE_DIR]
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def deploy_once(app: Path) -> Path:
    changes = [text_change(app / "src" / "Scanner.kt", "val inputSize = 112\n"),
               binary_change(app / "assets" / "ftk_tiny.tflite", b"model"),
               binary_change(app / "app" / "src" / "main" / "new.bin", b"new folder")]
    return apply_changes(app, changes, {"asset": "assets/ftk_tiny.tflite"})


def plant_journal(app: Path, files: object, **extra) -> Path:
    folder = app / STATE_DIR / "backup-29990101-000000"
    folder.mkdir(parents=True)
    (folder / JOURNAL).write_text(json.dumps({"created": "x", "status": "applied", "files": files, **extra}))
    return folder


def assert_refused(result: subprocess.CompletedProcess, match: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert match in lines[0], lines[0]


# ----------------------------------------------------------------------------------------------------------------
# item 1: the journal is not trusted
# ----------------------------------------------------------------------------------------------------------------
def _entry(path: str, existed: bool = False, backup: str | None = None, before: str | None = None,
           after: str = "0" * 64) -> dict:
    return {"path": path, "existed": existed, "backup": backup, "sha256_before": before, "sha256_after": after}


CRAFTED = {
    # "existed": false with the victim's sha256 as sha256_after: the old revert deleted the victim.
    "relative": lambda victim: [_entry("../outside/victim.txt", after=sha(victim.read_bytes()))],
    "absolute": lambda victim: [_entry(str(victim), after=sha(victim.read_bytes()))],
    "backup outside its folder": lambda victim: [_entry("src/Scanner.kt", True, "../../../outside/victim.txt",
                                                        sha(victim.read_bytes()))],
    "files not a list": lambda victim: "src/Scanner.kt",
    "entry missing keys": lambda victim: [{"path": "src/Scanner.kt"}],
    "entry not an object": lambda victim: ["src/Scanner.kt"],
    "bad sha": lambda victim: [_entry("src/Scanner.kt", after="not-a-digest")],
}


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("kind", sorted(CRAFTED))
def test_crafted_journal_is_refused(app, victim, kind, force):
    plant_journal(app, CRAFTED[kind](victim))
    before = tree(app)
    result = ftk("deploy", "--revert", "--app", str(app), *(["--force"] if force else []))
    assert_refused(result, "refusing to revert")
    assert victim.read_text() == VICTIM_TEXT and tree(app) == before


def test_journal_path_through_a_link_outside_is_refused(app, victim):
    (app / "link").symlink_to(victim.parent, target_is_directory=True)
    plant_journal(app, [_entry("link/victim.txt", after=sha(victim.read_bytes()))])
    assert_refused(ftk("deploy", "--revert", "--force", "--app", str(app)), "leads outside the app")
    assert victim.read_text() == VICTIM_TEXT


def test_backup_that_is_a_link_is_refused(app, victim):
    folder = plant_journal(app, [_entry("src/Scanner.kt", True, "00-Scanner.kt", sha(victim.read_bytes()),
                                        sha((app / "src" / "Scanner.kt").read_bytes()))])
    (folder / "00-Scanner.kt").symlink_to(victim)
    before = tree(app)
    assert_refused(ftk("deploy", "--revert", "--app", str(app)), "not a regular file")
    assert tree(app) == before


def test_well_formed_journal_shipped_with_the_checkout_is_refused(app):
    """Inside the app and consistent, but never recorded by ftk deploy here (its sha256 is unknown)."""
    scanner = app / "src" / "Scanner.kt"
    folder = plant_journal(app, [_entry("src/Scanner.kt", True, "00-Scanner.kt", sha(b"attacker's\n"),
                                        sha(scanner.read_bytes()))])
    (folder / "00-Scanner.kt").write_bytes(b"attacker's\n")
    before = tree(app)
    assert_refused(ftk("deploy", "--revert", "--app", str(app)), "not a journal ftk deploy recorded")
    assert tree(app) == before


def test_edited_journal_is_refused_and_the_real_one_reverts(app):
    before = tree(app)
    backup = deploy_once(app)
    journal_path = backup / JOURNAL
    original = journal_path.read_bytes()
    journal = json.loads(original)
    journal["files"][0]["sha256_before"] = sha(b"other")
    journal_path.write_text(json.dumps(journal, indent=2) + "\n")
    assert_refused(ftk("deploy", "--revert", "--app", str(app)), "not a journal ftk deploy recorded")

    journal_path.write_bytes(original)
    result = ftk("deploy", "--revert", "--app", str(app))
    assert result.returncode == 0, result.stderr
    assert tree(app) == before  # byte-exact, folders included: empty assets/ kept, app/src/main/ gone


def test_malformed_json_journal_is_a_clean_error(app):
    folder = app / STATE_DIR / "backup-1"
    folder.mkdir(parents=True)
    (folder / JOURNAL).write_text("[1, 2")
    result = ftk("deploy", "--revert", "--app", str(app))
    assert_refused(result, "nothing to revert")


# ----------------------------------------------------------------------------------------------------------------
# item 2: symbolic links and temp files
# ----------------------------------------------------------------------------------------------------------------
def test_planted_temp_link_is_not_followed(app, victim):
    scanner = app / "src" / "Scanner.kt"
    (scanner.parent / ".Scanner.kt.ftk-tmp").symlink_to(victim)  # the fixed temp name the old code opened
    apply_changes(app, [text_change(scanner, "val inputSize = 112\n")], {})
    assert victim.read_text() == VICTIM_TEXT
    assert not scanner.is_symlink() and scanner.read_text() == "val inputSize = 112\n"
    assert not [p for p in scanner.parent.iterdir() if p.name.endswith(".ftk-tmp") and not p.is_symlink()]


@pytest.mark.parametrize("what", ["assets folder", "activity file", "state folder"])
def test_links_leading_outside_are_refused(app, victim, what):
    outside = victim.parent
    if what == "assets folder":
        shutil.rmtree(app / "assets")
        (app / "assets").symlink_to(outside, target_is_directory=True)
        target = app / "assets" / "ftk_tiny.tflite"
    elif what == "activity file":
        (app / "src" / "Scanner.kt").unlink()
        (app / "src" / "Scanner.kt").symlink_to(victim)
        target = app / "src" / "Scanner.kt"
    else:
        (app / STATE_DIR).symlink_to(outside, target_is_directory=True)
        target = app / "src" / "Scanner.kt"
    listing = sorted(os.listdir(outside))
    with pytest.raises(InputError, match="outside the app|is not a folder"):
        apply_changes(app, [binary_change(target, b"model")], {})
    assert victim.read_text() == VICTIM_TEXT and sorted(os.listdir(outside)) == listing


def test_link_inside_the_app_changes_the_file_it_points_to(app):
    real = app / "src" / "Scanner.kt"
    (app / "Scanner.kt").symlink_to(real)
    backup = apply_changes(app, [text_change(app / "Scanner.kt", "val inputSize = 112\n")], {})
    assert (app / "Scanner.kt").is_symlink() and real.read_text() == "val inputSize = 112\n"
    assert json.loads((backup / JOURNAL).read_text())["files"][0]["path"] == "src/Scanner.kt"


def test_state_folder_as_a_file_is_a_clean_error(app):
    (app / STATE_DIR).write_text("not a folder")
    with pytest.raises(InputError, match="is not a folder"):
        apply_changes(app, [binary_change(app / "assets" / "m.tflite", b"model")], {})
    assert (app / STATE_DIR).read_text() == "not a folder" and not (app / "assets" / "m.tflite").exists()


# ----------------------------------------------------------------------------------------------------------------
# item 6: byte-exact revert and rollback, folders included
# ----------------------------------------------------------------------------------------------------------------
def test_revert_keeps_an_empty_folder_that_existed(app):
    before = tree(app)
    backup = deploy_once(app)
    assert json.loads((backup / JOURNAL).read_text())["created_dirs"] == ["app", "app/src", "app/src/main"]
    result = ftk("deploy", "--revert", "--app", str(app))
    assert result.returncode == 0, result.stderr
    assert tree(app) == before and (app / "assets").is_dir()


def test_failed_apply_keeps_an_empty_folder_that_existed(app):
    scanner = app / "src" / "Scanner.kt"
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(scanner)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here (needs root and a filesystem with the immutable flag)")
    before = tree(app)
    try:
        with pytest.raises(InputError, match="every file was restored"):
            apply_changes(app, [binary_change(app / "assets" / "ftk_tiny.tflite", b"model"),
                                binary_change(app / "new" / "dir" / "x.bin", b"x"),
                                text_change(scanner, "val inputSize = 112\n")], {})
    finally:
        subprocess.run(["chattr", "-i", str(scanner)], check=True)
    assert tree(app) == before and not (app / STATE_DIR).exists()


# ----------------------------------------------------------------------------------------------------------------
# the same through ftk deploy on the fixture app (a real tiny export)
# ----------------------------------------------------------------------------------------------------------------
ASSETS = "app/src/main/assets"


def test_cli_deploy_refuses_links_and_state_file_and_reverts_byte_exact(tiny_export, android_app, victim):
    assets = android_app / ASSETS
    for model in assets.iterdir():
        model.unlink()  # an app whose assets/ folder is empty before the first deploy
    before = tree(android_app)
    assert ftk("deploy", str(tiny_export), "--app", str(android_app), "--threshold", "0.4").returncode == 0
    assert ftk("deploy", "--revert", "--app", str(android_app)).returncode == 0
    assert tree(android_app) == before and assets.is_dir()

    shutil.rmtree(android_app / STATE_DIR)
    (android_app / STATE_DIR).write_text("a file")
    assert_refused(ftk("deploy", str(tiny_export), "--app", str(android_app)), "is not a folder")
    (android_app / STATE_DIR).unlink()

    assets.rmdir()
    assets.symlink_to(victim.parent, target_is_directory=True)
    assert_refused(ftk("deploy", str(tiny_export), "--app", str(android_app)), "leads outside the app")
    assert os.listdir(victim.parent) == ["victim.txt"] and not (android_app / STATE_DIR).exists()


def test_unwritable_state_folder_refuses_before_changing_anything(app, tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    monkeypatch.setenv("FTK_STATE_DIR", str(blocker / "state"))
    before = tree(app)
    with pytest.raises(InputError, match="cannot (record this deploy|lock the app checkout).*nothing was changed"):
        deploy_once(app)
    assert tree(app) == before and not (app / STATE_DIR).exists()
