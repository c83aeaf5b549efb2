"""Crash tests' tools: a run hit by a real SIGKILL or a Ctrl-C at its k-th filesystem step, and what `diff -r` sees."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import warnings
from pathlib import Path
from typing import Callable

from toolkit.errors import ToolkitError

FAULT_OPS = ("replace", "rename", "fsync", "link", "unlink", "mkdir", "rmdir")


def file_tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every folder, and every file's sha256 and mode, under root (folders named in ``skip`` left out)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in filenames:
            path = Path(dirpath) / name
            mode = stat.S_IMODE(path.lstat().st_mode)
            out[str(path.relative_to(root))] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {mode:o}"
    return out


def run_hit_at(step: int, fault: str, action: Callable[[], object]) -> tuple[str, int]:
    """Run ``action`` in a forked child whose ``step``-th filesystem step is hit by ``fault`` ("kill": SIGKILL just
    before it; "interrupt": KeyboardInterrupt just after it; step 0: no fault). ("killed" | "exit <code>", the
    number of steps the child ran)."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # JAX warns on any fork once loaded; the child runs only ftk's file code
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 3
        try:
            os.close(read_end)
            counter = [0]

            def hooked(real):
                def op(*args, **kwargs):
                    counter[0] += 1
                    os.write(write_end, b".")
                    if counter[0] == step and fault == "kill":
                        os.kill(os.getpid(), signal.SIGKILL)
                    result = real(*args, **kwargs)
                    if counter[0] == step and fault == "interrupt":
                        raise KeyboardInterrupt
                    return result
                return op

            for name in FAULT_OPS:
                setattr(os, name, hooked(getattr(os, name)))
            try:
                action()
                code = 0
            except KeyboardInterrupt:
                code = 130
            except ToolkitError as exc:
                code = exc.exit_code
        finally:
            os._exit(code)
    os.close(write_end)
    steps = 0
    while chunk := os.read(read_end, 4096):
        steps += len(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return "killed", steps
    return f"exit {os.WEXITSTATUS(status)}", steps
