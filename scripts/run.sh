#!/usr/bin/env bash
# The main job: napari on the sample slide with the napari-higt widgets.
# On a machine without a display (or with --headless) it renders the same view under Xvfb
# and writes out/workbench.png. Extra arguments go to `napari-higt view`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
headless=0
for a in "$@"; do [ "$a" = "--headless" ] && headless=1; done
if [ -z "${DISPLAY:-}" ] || [ "$headless" = 1 ]; then
    args=("$@")
    [ "$headless" = 1 ] || args+=("--headless")
    exec xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/napari-higt view "${args[@]}"
fi
exec .venv/bin/napari-higt view "$@"
