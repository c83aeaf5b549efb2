"""The shared CLI flags keep one meaning in every command (docs/cli.md), and the old spellings still work.

Everything runs the real ``ftk`` entry point (toolkit.cli.main) inside click's CliRunner isolation, on ``--help``
and on paths that stop before any model work: the library function a command calls is replaced by a stub that
records its arguments, so "old and new spelling mean the same" is checked on what the library actually receives.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from toolkit.cli import COMMANDS, cli, main
from toolkit.constants import DEFAULT_PICK, DEFAULT_THREADS, PICK_RULES
from toolkit.errors import InputError

STUB_MESSAGE = "stub reached"


def ftk(*args) -> tuple[int, str, str]:
    """Run ``ftk ARGS`` through main() under CliRunner's isolated stdin/stdout/stderr."""
    with CliRunner().isolation() as (out, err, _):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return code, out.getvalue().decode(), err.getvalue().decode()


def assert_usage_error(code: int, err: str, needle: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err


def command(name: str) -> click.Command:
    return cli.get_command(None, name)


def option(cmd: click.Command, flag: str) -> click.Option | None:
    return next((p for p in cmd.params if isinstance(p, click.Option) and flag in p.opts + p.secondary_opts), None)


@pytest.fixture
def stub(monkeypatch):
    """stub("toolkit.export", "export_model") -> the list of kwargs each call received; the call raises InputError,
    so the command ends as a clean exit 2 before printing anything."""

    def install(module: str, name: str, calls: list[dict] | None = None, **extra) -> list[dict]:
        calls = [] if calls is None else calls

        def record(*args, **kwargs):
            calls.append({"args": args, **kwargs})
            raise InputError(STUB_MESSAGE)

        fake = types.ModuleType(module)
        setattr(fake, name, record)
        for attr, value in extra.items():
            setattr(fake, attr, value)
        monkeypatch.setitem(sys.modules, module, fake)
        return calls

    return install


def run_stubbed(calls: list[dict], *args) -> dict:
    code, _, err = ftk(*args)
    assert_usage_error(code, err, STUB_MESSAGE)
    return calls.pop()


# ---------------------------------------------------------------------------------------------------------------
# every command: one meaning per shared flag
# ---------------------------------------------------------------------------------------------------------------
ALL = sorted(COMMANDS)
# --quiet on every command
QUIET_COMMANDS = sorted(COMMANDS)
FACES_COMMANDS = {"export": "--calibration", "init-checkpoint": "--calibration", "parity-check": "--images"}
# --out names the main output: a file when it is one file, a folder when it is a set (docs/cli.md)
PICK_COMMANDS = ["compare", "evaluate", "export", "init-checkpoint", "match", "parity-check", "prepare"]
OUT_KIND = {"prepare": "file", "init-checkpoint": "file", "parity-check": "file",
            "train": "folder", "evaluate": "folder", "export": "folder", "bench": "folder", "pipeline": "folder"}


@pytest.mark.parametrize("name", ALL)
def test_every_help_runs_and_old_spellings_are_never_the_primary_name(name):
    code, out, err = ftk(name, "--help")
    assert code == 0 and out.startswith(f"Usage: ftk {name}"), err
    cmd = command(name)
    for flag in ("--calibration", "--images", "--no-progress"):
        opt = option(cmd, flag)
        assert opt is None or opt.opts[0] != flag or opt.hidden, f"{name}: {flag} is only an alias now"


@pytest.mark.parametrize("name", ALL)
def test_shared_flags_have_one_type_everywhere(name):
    cmd = command(name)
    threads = option(cmd, "--threads")
    if threads is not None and name != "bench":  # bench times several counts: the same N, repeatable
        assert isinstance(threads.type, click.IntRange) and threads.type.min == 1 and not threads.multiple
    if threads is not None:  # one default everywhere
        assert [int(v) for v in (threads.default if threads.multiple else [threads.default])] == [DEFAULT_THREADS]
    quiet = option(cmd, "--quiet")
    assert (quiet is not None) == (name in QUIET_COMMANDS), f"{name}: --quiet everywhere"
    if quiet is not None:
        assert quiet.is_flag and quiet.name == "quiet"
    faces = option(cmd, "--faces")
    assert (faces is not None) == (name in FACES_COMMANDS)
    if faces is not None:
        assert faces.name == "faces" and faces.metavar == "DIR_OR_CSV"
        assert option(cmd, FACES_COMMANDS[name]).hidden and f"Old spelling: {FACES_COMMANDS[name]}" in faces.help
    pick = option(cmd, "--pick")
    assert (pick is not None) == (name in PICK_COMMANDS), f"{name}: --pick wherever faces are detected"
    if pick is not None:
        assert tuple(pick.type.choices) == PICK_RULES and pick.default == DEFAULT_PICK
    out = option(cmd, "--out")
    assert (out is not None) == (name in OUT_KIND)
    if out is not None:
        kind = OUT_KIND[name]
        assert (out.type.file_okay, out.type.dir_okay) == ((True, False) if kind == "file" else (False, True)), name


def test_help_names_both_spellings():
    for name, old in FACES_COMMANDS.items():
        text = " ".join(ftk(name, "--help")[1].split())
        assert "--faces DIR_OR_CSV" in text and f"(Old spelling: {old}.)" in text
    assert "--quiet, --no-progress" in ftk("train", "--help")[1]
    assert "--table-csv, --csv FILE" in ftk("bench", "--help")[1]
    parity_help = " ".join(ftk("parity-check", "--help")[1].split())
    assert "the held-out faces the export recorded (manifest parity_sample), else the stored reference" in parity_help


def test_help_stays_free_of_heavy_imports():
    """Every `ftk CMD --help` only imports click, the command modules and toolkit.constants."""
    script = ("import sys; from toolkit.cli import COMMANDS, main\n"
              "for name in COMMANDS:\n"
              "    try: main([name, '--help'])\n"
              "    except SystemExit: pass\n"
              "sys.stderr.write(repr([m for m in ('numpy', 'torch', 'ai_edge_litert', 'PIL') if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr.strip().endswith("[]"), done.stderr


# ---------------------------------------------------------------------------------------------------------------
# --faces DIR_OR_CSV, old spellings --calibration / --images
# ---------------------------------------------------------------------------------------------------------------
def test_export_faces_and_calibration_mean_the_same(stub, tmp_path):
    calls = stub("toolkit.export", "export_model")
    args = ["export", tmp_path / "c.pt", "--out", tmp_path / "out", "--quantize", "int8"]
    new = run_stubbed(calls, *args, "--faces", "faces.csv")
    old = run_stubbed(calls, *args, "--calibration", "faces.csv")
    assert new == old and new["calibration"] == "faces.csv"


def test_init_checkpoint_faces_and_calibration_mean_the_same(stub, tmp_path):
    calls = stub("toolkit.init_checkpoint", "init_checkpoint")
    (tmp_path / "faces.csv").write_text("path\n")
    args = ["init-checkpoint", "--out", tmp_path / "c.pt"]
    new = run_stubbed(calls, *args, "--faces", tmp_path / "faces.csv")
    old = run_stubbed(calls, *args, "--calibration", tmp_path / "faces.csv")
    assert new == old and new["calibration"] == str(tmp_path / "faces.csv")
    code, _, err = ftk(*args, "--faces", tmp_path / "missing")  # as before: a missing folder is a usage error
    assert_usage_error(code, err, "does not exist")


@pytest.mark.parametrize("images", ["a", "b"])
def test_both_spellings_together_are_refused(tmp_path, images):
    """Even with the same value: one option given twice under two names is a mistake to point out."""
    args = ["parity-check", tmp_path / "m.tflite", "--checkpoint", tmp_path / "c.pt"]
    code, _, err = ftk(*args, "--faces", "a", "--images", images)
    assert_usage_error(code, err, "--faces and --images are two spellings of one option; give one")


def test_parity_faces_and_images_mean_the_same(stub, tmp_path):
    calls = stub("toolkit.parity", "parity_check", parse_tolerances=lambda items: {})
    args = ["parity-check", tmp_path / "m.tflite", "--checkpoint", tmp_path / "c.pt"]
    new = run_stubbed(calls, *args, "--faces", "held")
    old = run_stubbed(calls, *args, "--images", "held")
    assert new == old and new["images"] == "held"
    assert run_stubbed(calls, *args)["images"] is None  # the library picks its default (the held-out faces)


# ---------------------------------------------------------------------------------------------------------------
# --quiet (train: old --no-progress)
# ---------------------------------------------------------------------------------------------------------------
QUIET_CASES = {
    "train": ("toolkit.train", "train_from_config_file", ["--config", "cfg.yaml"]),
    "export": ("toolkit.export", "export_model", ["c.pt", "--out", "out"]),
    "init-checkpoint": ("toolkit.init_checkpoint", "init_checkpoint", ["--out", "c.pt"]),
    "prepare": ("toolkit.prepare", "prepare", ["photos", "--out", "faces.csv"]),
    "evaluate": ("toolkit.evaluate", "evaluate_model_file", ["m.tflite", "--pairs", "pairs.txt"]),
    "bench": ("toolkit.bench", "run_bench", ["m.tflite"]),
    "parity-check": ("toolkit.parity", "parity_check", ["m.tflite", "--checkpoint", "c.pt"]),
    "pipeline": ("toolkit.pipeline", "run_pipeline", ["{config}", "--out", "run"]),
}


@pytest.mark.parametrize("name", sorted(QUIET_CASES))
def test_quiet_turns_progress_off(stub, tmp_path, monkeypatch, name):
    module, func, args = QUIET_CASES[name]
    monkeypatch.chdir(tmp_path)
    calls = stub(module, func, parse_tolerances=lambda items: {}, format_table=str, raise_on_budget=None)
    (tmp_path / "pipeline.yaml").write_text("{}\n")
    args = [a.format(config=tmp_path / "pipeline.yaml") for a in args]
    assert run_stubbed(calls, name, *args)["progress"] is True
    assert run_stubbed(calls, name, *args, "--quiet")["progress"] is False
    assert run_stubbed(calls, name, *args, "--json")["progress"] is False  # JSON output never shows bars


def test_train_no_progress_is_quiet(stub, tmp_path):
    calls = stub("toolkit.train", "train_from_config_file")
    args = ["train", "--config", tmp_path / "cfg.yaml"]
    assert run_stubbed(calls, *args, "--no-progress") == run_stubbed(calls, *args, "--quiet")


# ---------------------------------------------------------------------------------------------------------------
# --threads N: one integer; bench repeats it and still reads the old comma list
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling, expected", [
    ([], [DEFAULT_THREADS]),
    (["--threads", "1,2"], [1, 2]),
    (["--threads", "1", "--threads", "2"], [1, 2]),
    (["--threads", "1,2", "--threads", "4"], [1, 2, 4]),
    (["--threads", "2", "--threads", "2,1"], [2, 1]),
])
def test_bench_threads_spellings_give_one_list(stub, spelling, expected):
    calls = stub("toolkit.bench", "run_bench", format_table=str)
    assert run_stubbed(calls, "bench", "m.tflite", *spelling)["threads"] == expected


@pytest.mark.parametrize("value", ["0", "a", "1,x", ",", "-1", "1.5"])
def test_bench_bad_threads_is_one_line_exit_2(stub, value):
    calls = stub("toolkit.bench", "run_bench", format_table=str)
    code, _, err = ftk("bench", "m.tflite", "--threads", value)
    assert_usage_error(code, err, "--threads")
    assert not calls


@pytest.mark.parametrize("name, args", [
    ("evaluate", ["m.tflite", "--pairs", "p.txt"]), ("compare", ["a.jpg", "b.jpg", "--model", "{model}"]),
    ("match", ["p.jpg", "--gallery", "{model}", "--model", "{model}"]),
    ("parity-check", ["m.tflite", "--checkpoint", "c.pt"]),
])
def test_threads_elsewhere_is_one_integer(tmp_path, name, args):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    args = [a.format(model=model) for a in args]
    code, _, err = ftk(name, *args, "--threads", "1,2")
    assert_usage_error(code, err, "--threads")


# ---------------------------------------------------------------------------------------------------------------
# bench --table-csv (old --csv: an output, unlike evaluate's input --csv)
# ---------------------------------------------------------------------------------------------------------------
def test_bench_table_csv_and_csv_mean_the_same(stub):
    calls = stub("toolkit.bench", "run_bench", format_table=str)
    new = run_stubbed(calls, "bench", "m.tflite", "--table-csv", "t.csv")
    old = run_stubbed(calls, "bench", "m.tflite", "--csv", "t.csv")
    assert new == old and new["csv_path"] == "t.csv"


# ---------------------------------------------------------------------------------------------------------------
# --pick center|confidence
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["prepare", "evaluate", "export", "init-checkpoint", "parity-check"])
def test_pick_default_and_choices(stub, tmp_path, monkeypatch, name):
    module, func, args = QUIET_CASES[name]
    monkeypatch.chdir(tmp_path)
    calls = stub(module, func, parse_tolerances=lambda items: {})
    assert run_stubbed(calls, name, *args)["pick"] == DEFAULT_PICK
    for rule in PICK_RULES:
        assert run_stubbed(calls, name, *args, "--pick", rule)["pick"] == rule
    code, _, err = ftk(name, *args, "--pick", "middle")
    assert_usage_error(code, err, "--pick")
    assert not calls


def test_docs_table_lists_the_shared_flags():
    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    for flag in ("--faces", "--quiet", "--threads", "--out", "--pick", "--table-csv", "--json", "--overwrite"):
        assert f"| `{flag}" in text, flag


@pytest.fixture
def stub_embedder(monkeypatch):
    """compare and match load the model before detecting: a stand-in embedder, no model file read."""
    fake = types.ModuleType("toolkit.embedders")
    fake.EmbedderOptions = lambda **kwargs: kwargs
    fake.load_embedder = lambda path, options: types.SimpleNamespace(spec=None)
    monkeypatch.setitem(sys.modules, "toolkit.embedders", fake)


def test_compare_pick_reaches_the_library(stub, stub_embedder, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    calls = stub("toolkit.compare", "compare_images")
    args = ["compare", "a.jpg", "b.jpg", "--model", model]
    assert run_stubbed(calls, *args)["pick"] == DEFAULT_PICK
    assert run_stubbed(calls, *args, "--pick", "confidence")["pick"] == "confidence"


def test_match_pick_reaches_enrolment_and_probe(stub, stub_embedder, tmp_path):
    model, gallery = tmp_path / "m.tflite", tmp_path / "gallery.npz"
    model.write_bytes(b"")
    gallery.write_bytes(b"")
    stub("toolkit.compare", "compare_images",
         resolve_threshold=lambda *a: types.SimpleNamespace(value=None, note=""))
    calls: list[dict] = []
    stub("toolkit.match", "enroll_gallery", calls, load_gallery=lambda path: None, save_gallery=None)
    sys.modules["toolkit.match"].match_probe = sys.modules["toolkit.match"].enroll_gallery  # the same recorder
    enrolled = run_stubbed(calls, "match", "p.jpg", "--gallery", tmp_path, "--model", model, "--pick", "confidence")
    probed = run_stubbed(calls, "match", "p.jpg", "--gallery", gallery, "--model", model, "--pick", "confidence")
    assert enrolled["pick"] == probed["pick"] == "confidence"
    assert enrolled["args"][0] == tmp_path and probed["args"][0] == "p.jpg"
