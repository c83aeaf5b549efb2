#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, the slow integration tests on real LFW faces included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest tests "$@"
