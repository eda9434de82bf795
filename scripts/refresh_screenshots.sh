#!/usr/bin/env bash
# Retake the README's screenshots (docs/images/*.png) on purpose: the widget tests write
# them there instead of their usual untracked folder (out/screenshots).
set -euo pipefail
cd "$(dirname "$0")/.."
NAPARI_HIGT_SCREENSHOTS="$PWD/docs/images" bash scripts/test.sh tests/ui "$@"
git status --short docs/images
