"""The dependency structure of ``toolkit`` (docs/architecture.md), read from the code's own imports, function-local
and ``TYPE_CHECKING`` ones included: the layers contract in pyproject.toml holds (the real ``lint-imports``), and no
module reaches itself through its imports. Needs the dev extras (import-linter, grimp: scripts/setup.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]


def test_layers_contract_is_kept():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "1 kept, 0 broken" in report  # the contract was found and checked, not skipped


def test_no_import_cycle_among_toolkit_modules():
    sys.path.insert(0, str(REPO))  # this checkout's toolkit, as the subprocesses of the suite see it
    try:
        graph = grimp.build_graph("toolkit", exclude_type_checking_imports=False, cache_dir=None)
    finally:
        sys.path.remove(str(REPO))
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if graph.chain_exists(importer=imported, imported=module):
                back = graph.find_shortest_chain(importer=imported, imported=module)
                cycles.append(" -> ".join((module, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


HEAVY = ("torch", "tensorflow", "ai_edge_litert", "litert_torch", "matplotlib")


def test_cli_and_command_modules_import_no_heavy_library():
    """``ftk --help`` imports toolkit.cli, ``ftk CMD --help`` one command module too: neither may load a heavy
    library (those are imported inside the functions that use them)."""
    commands = sorted(p.stem for p in (REPO / "toolkit" / "commands").glob("*.py") if p.stem != "__init__")
    modules = ["toolkit.cli", *(f"toolkit.commands.{name}" for name in commands)]
    code = ("import importlib, sys\n"
            "for name in sys.argv[2:]:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.argv[1].split(',') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", code, ",".join(HEAVY), *modules], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", f"importing {modules} loaded {run.stdout.strip()}"
