#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, the slow integration tests on real LFW faces included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# One pytest-xdist worker per core (FTK_TEST_WORKERS overrides; 1 runs in this process), each test file in one
# worker so its module fixtures are built once; fixtures every file needs are built once per run (tests/conftest.py).
workers=${FTK_TEST_WORKERS:-$(nproc 2>/dev/null || echo 1)}
if [ "$workers" -gt 1 ]; then
  exec .venv/bin/python -m pytest tests -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
fi
exec .venv/bin/python -m pytest tests "$@"
