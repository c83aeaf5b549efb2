"""The small public API in toolkit/__init__.py: every name resolves, lazily (importing toolkit loads no torch)."""

from __future__ import annotations

import subprocess
import sys


def test_public_names_resolve_lazily():
    code = ("import sys, toolkit\n"
            "heavy = ('torch', 'numpy', 'litert_torch', 'ai_edge_litert')\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n"
            "from toolkit import ModelSpec, export_model, deploy_model, evaluate_embedder, run_pipeline\n"
            "import toolkit.evaluate, toolkit.deploy\n"
            "print(export_model.__module__, deploy_model.__name__, evaluate_embedder.__name__)\n"
            "print(all(getattr(toolkit, n) is not None for n in toolkit.__all__))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "[]"  # nothing heavy on `import toolkit`
    assert out[1] == "toolkit.export.stage deploy evaluate"  # defined in the export package, re-exported
    assert out[2] == "True"


def test_unknown_name_is_an_attribute_error():
    import pytest

    import toolkit

    with pytest.raises(AttributeError, match="no attribute 'exprot_model'"):
        toolkit.exprot_model  # noqa: B018
