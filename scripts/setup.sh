#!/usr/bin/env bash
# Create .venv and install everything napari-higt needs on a fresh Debian machine.
# Idempotent: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="xvfb xauth libgl1 libegl1 libgl1-mesa-dri libxkbcommon-x11-0 libxcb-icccm4 \
libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 \
libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1 libglib2.0-0"

missing=""
for p in $APT_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "[setup] installing system packages:$missing"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv"
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.napari-higt-installed
want=$(cat pyproject.toml | sha1sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
# torch first, pinned to the CPU wheel on this disk; the package's range (torch>=2.2) then
# installs nothing more (a bare "torch" would pull a multi-GB CUDA build).
$VPY -m pip install -q --upgrade pip >/dev/null
$VPY -m pip show torch >/dev/null 2>&1 || $VPY -m pip install -q torch==2.13.0
# timm (the foundation-encoder extractor) needs torchvision: 0.28.0 is the release paired with
# torch 2.13 (it requires torch==2.13.0, so nothing else moves); its compiled ops are a CUDA
# build that the CPU torch cannot load, which napari_higt.features.timm_extractor handles.
$VPY -m pip show torchvision >/dev/null 2>&1 || $VPY -m pip install -q torchvision==0.28.0
$VPY -m pip install -q -e ".[testing,timm]"
# The package runs on Qt 6 (PyQt6). A PyQt5 left from an earlier install would be chosen
# first by qtpy (napari's Qt layer) and brings back napari's deprecation warnings.
for old in PyQt5 PyQt5-Qt5 PyQt5-sip; do
    if $VPY -m pip show "$old" >/dev/null 2>&1; then
        echo "[setup] removing $old (replaced by PyQt6)"
        $VPY -m pip uninstall -y -q "$old"
    fi
done
echo "$want" > "$stamp"
echo "[setup] environment ready in .venv"
