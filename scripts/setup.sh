#!/usr/bin/env bash
# Set up everything ftk and its tests need on a fresh machine: a virtualenv with the pinned stack, and the
# system packages the adb tests use. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.ftk-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v -E "^WARNING: Location" || true
  .venv/bin/python -c "import toolkit, torch, litert_torch, ai_edge_litert, facenet_pytorch" 2>/dev/null \
    || { echo "setup: the Python install failed" >&2; exit 1; }
  touch "$stamp"
fi
# System packages for the adb tests (the AOSP adbd daemon) and the JVM tests (kotlinc); see scripts/setup-system.sh.
if [ -x scripts/setup-system.sh ]; then
  scripts/setup-system.sh || echo "setup: system packages could not be installed; adb and Kotlin tests will be skipped" >&2
fi
# The app's TensorFlow Lite 2.12 runtime for `ftk deploy --verify-runtime` and its tests: a cached venv
# (~/.cache/ftk/runtimes, a few minutes once; nothing when it is there).
.venv/bin/python -c "from toolkit.deploy.runtime_verify import runtime_venv; runtime_venv('2.12.0')" \
  || echo "setup: the TensorFlow 2.12 runtime venv could not be built; the tests build it on first use" >&2
