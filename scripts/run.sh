#!/usr/bin/env bash
# The main job: napari on the bundled demo slide with the napari-higt widgets docked and the
# demo checkpoint preselected. On a machine without a display (or with --headless) it runs
# `napari-higt demo --out out/demo` instead (the whole pipeline, headless: annotated figure,
# QuPath GeoJSON, node CSV, report) and renders the workbench under Xvfb to
# out/workbench.png. Extra arguments go to `napari-higt view`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Qt warns at every start when XDG_RUNTIME_DIR is unset (headless machines, containers).
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/runtime-$(id -u)"
    mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
fi
headless=0
for a in "$@"; do [ "$a" = "--headless" ] && headless=1; done
if [ -z "${DISPLAY:-}" ] || [ "$headless" = 1 ]; then
    .venv/bin/napari-higt demo --out out/demo
    args=("$@")
    [ "$headless" = 1 ] || args+=("--headless")
    exec xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/napari-higt view "${args[@]}"
fi
exec .venv/bin/napari-higt view "$@"
