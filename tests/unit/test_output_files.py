"""An output replaces only a regular file: `--overwrite` onto a FIFO, a device (through a link: never /dev itself),
a socket or a folder is one `error:` line and exit 2, and the thing at that path is left as it was."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from toolkit.errors import InputError
from toolkit.io import atomic_path, check_outputs_free, write_json_atomic


def ftk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def specials(tmp_path) -> dict[str, Path]:
    """A FIFO, a link to /dev/null (a character device), a socket and a folder, each where an output would go."""
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    device = tmp_path / "device.png"
    device.symlink_to("/dev/null")
    sock = tmp_path / "socket.png"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    folder = tmp_path / "folder.png"
    folder.mkdir()
    yield {"FIFO": fifo, "character device": device, "socket": sock, "folder": folder}
    server.close()


def kind_of(path: Path) -> int:
    return stat.S_IFMT(os.stat(path).st_mode)


@pytest.mark.parametrize("command", ["compare", "parity-check"])
def test_cli_overwrite_refuses_what_is_not_a_regular_file(specials, tmp_path, command):
    dummy = tmp_path / "a.jpg"
    dummy.write_bytes(b"not read: the output is checked first")
    for what, path in specials.items():
        before = kind_of(path)
        if command == "compare":
            result = ftk("compare", str(dummy), str(dummy), "--model", str(dummy), "--plot", str(path), "--overwrite")
        else:
            result = ftk("parity-check", str(dummy), "--checkpoint", str(dummy), "--out", str(path), "--overwrite")
        assert result.returncode == 2, (what, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        if what != "folder":  # click refuses a folder for --plot / --out (dir_okay=False) first
            assert "not a regular file" in lines[0] and what.split()[-1] in lines[0], lines[0]
        assert kind_of(path) == before, what  # the node is still what it was
    assert os.path.realpath(specials["character device"]) == "/dev/null"


def test_a_special_file_that_appears_during_the_write_is_not_replaced(tmp_path):
    """The check runs again just before the rename: a FIFO put there while the output was written stays."""
    out = tmp_path / "report.json"
    out.write_text("old")
    with pytest.raises(InputError, match="is a FIFO, not a regular file"):
        with atomic_path(out) as tmp:
            tmp.write_text("new")
            out.unlink()
            os.mkfifo(out)
    assert stat.S_ISFIFO(os.lstat(out).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temp file left


def test_regular_files_and_links_to_them_are_still_replaced(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    check_outputs_free([target, link, tmp_path / "absent.json"], overwrite=True)
    write_json_atomic(target, {"a": 1})
    write_json_atomic(link, {"b": 2})  # the link itself is replaced by the file, as before
    assert target.read_text().strip().startswith("{") and not link.is_symlink()
