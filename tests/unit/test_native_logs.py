"""The native libraries' log lines stay off the terminal on any CPU (toolkit.native_logs).

Some of those lines appear only on some CPUs (TensorFlow's ``oneDNN custom operations are on`` and absl's
``before absl::InitializeLog()`` preamble on AVX-512 VNNI machines), so the tests check the mechanism by
construction: ftk's levels are in the environment before a native library loads, every import of one in toolkit/
goes through :func:`toolkit.native_logs.quiet_import`, and a stand-in library that logs the way TensorFlow does
(level from ``TF_CPP_MIN_LOG_LEVEL`` read at load, plus a raw write to file descriptor 2) prints nothing.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from toolkit import native_logs

REPO = Path(__file__).resolve().parents[2]

ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
ONEDNN = "I0000 00:00:1 util.cc:1] oneDNN custom operations are on."
RAW_LINE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."

# Logs as the converter's bundled TensorFlow does: the level is read from the environment once, at load; an INFO
# line that passes comes with absl's preamble. The raw line is printed whatever the level (like TFLite's notice).
FAKE_NATIVE = f"""
import os
if int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") or 0) < 1:
    os.write(2, {(ABSL_PREAMBLE + chr(10) + ONEDNN + chr(10)).encode()!r})
os.write(2, {(RAW_LINE + chr(10)).encode()!r})
"""


def _run_with_fake_native(tmp_path: Path, script: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "fake_native.py").write_text(FAKE_NATIVE)
    clean = {k: v for k, v in os.environ.items() if k not in native_logs.QUIET_ENV}
    clean["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO)])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=120, env={**clean, **env})


IMPORT_THROUGH_FTK = """
    import sys
    from toolkit import native_logs
    native_logs.configure(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    with native_logs.quiet_import():
        import fake_native
    print("imported")
"""


def test_a_native_library_loaded_through_ftk_prints_nothing(tmp_path):
    out = _run_with_fake_native(tmp_path, IMPORT_THROUGH_FTK)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "imported"
    assert out.stderr == ""


def test_verbose_shows_the_native_lines(tmp_path):
    out = _run_with_fake_native(tmp_path, IMPORT_THROUGH_FTK.replace("else 0", "else 1"))
    assert out.returncode == 0, out.stderr
    assert ABSL_PREAMBLE in out.stderr and ONEDNN in out.stderr and RAW_LINE in out.stderr


def test_the_level_alone_drops_the_absl_and_onednn_lines(tmp_path):
    """Layer 1 on its own (no file-descriptor redirect): ftk's TF_CPP_MIN_LOG_LEVEL is set before the load."""
    out = _run_with_fake_native(tmp_path, """
        from toolkit import native_logs
        native_logs.configure(0)
        import fake_native
    """)
    assert out.returncode == 0, out.stderr
    assert ABSL_PREAMBLE not in out.stderr and ONEDNN not in out.stderr
    assert RAW_LINE in out.stderr  # what layer 2 (quiet_import) is for


def test_the_cli_sets_the_levels_before_any_command_runs(tmp_path):
    script = tmp_path / "levels_after_cli.py"
    script.write_text(textwrap.dedent("""
        import os, sys
        from toolkit.cli import main
        try:
            main(sys.argv[1:])
        except SystemExit:
            pass
        print(os.environ["TF_CPP_MIN_LOG_LEVEL"], os.environ["TORCH_CPP_LOG_LEVEL"], os.environ["GLOG_minloglevel"])
    """))
    env = {k: v for k, v in os.environ.items() if k not in native_logs.QUIET_ENV}
    env["PYTHONPATH"] = str(REPO)

    def levels(*args: str, **extra: str) -> list[str]:
        out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120,
                             env={**env, **extra})
        return out.stdout.split()[-3:]

    assert levels("info", "--help") == ["2", "ERROR", "2"]
    assert levels("-v", "info", "--help") == ["0", "INFO", "0"]
    assert levels("info", "--help", TF_CPP_MIN_LOG_LEVEL="1")[0] == "1"  # the user's own setting wins


def _inside_quiet_import(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.With) and any("quiet_import" in ast.unparse(item.context_expr) for item in node.items):
            return True
    return False


def test_every_native_import_in_toolkit_goes_through_quiet_import():
    """A new ``import litert_torch`` (or ai_edge_litert, ...) outside ``with native_logs.quiet_import():`` would
    load the library with its default levels and print its load-time lines: refuse it here, on any CPU."""
    offenders = []
    for path in sorted((REPO / "toolkit").rglob("*.py")):
        if path.name == "native_logs.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            native = [n for n in names if n.split(".")[0] in native_logs.NATIVE_MODULES]
            if native and not _inside_quiet_import(node, parents):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {', '.join(native)}")
    assert offenders == [], offenders


def test_litert_progress_is_shown_only_with_verbose():
    from toolkit.export import litert_progress

    import litert_torch

    config = litert_torch._config.config
    try:
        native_logs.configure(0)
        with litert_progress(True):
            assert config.show_progress is False  # ~30 "[START] ... [ DONE]" lines on stdout otherwise
        native_logs.configure(1)
        with litert_progress(True):
            assert config.show_progress is True
    finally:
        native_logs.configure(0)


def test_info_on_a_tflite_prints_no_runtime_lines(export_dir):
    """TFLite prints "Created TensorFlow Lite XNNPACK delegate for CPU." at the first allocate, whatever the level."""
    out = subprocess.run([sys.executable, "-m", "toolkit.cli", "info", str(export_dir / "model_float32.tflite")],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert "XNNPACK" not in out.stderr + out.stdout and "INFO:" not in out.stderr, out.stderr


@pytest.mark.parametrize("verbosity", [0, 1])
def test_a_failure_under_the_redirect_still_shows_the_librarys_words(verbosity, capfd, caplog):
    native_logs.configure(verbosity)
    try:
        with pytest.raises(RuntimeError), native_logs.native_stderr_hidden("the converter"):
            os.write(2, b"E0000 converter.cc:1] cannot legalize op\n")
            raise RuntimeError("conversion failed")
    finally:
        native_logs.configure(0)
    shown = capfd.readouterr().err + caplog.text
    assert "cannot legalize op" in shown
