#!/usr/bin/env bash
# The main job: set up (if needed), then run the example pipeline — pretrained MobileFaceNet from a local file,
# a short leak-free fine-tune on LFW, float32 + int8 TFLite export, the accuracy ladder on pairsDevTest.txt,
# parity and a host benchmark — into runs/example/ (report.html there). Re-running resumes / reuses what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/ftk pipeline "${1:-examples/lfw_mobilefacenet.yaml}" --out "${2:-runs/example}"
